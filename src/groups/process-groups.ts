import type { Kernel } from '../engine/index.js'
import { QueuedStream } from '../streams/queued-stream.js'
import type { DataspaceRecord } from '../model/types.js'
import { freezeJson, toPid } from '../model/validate.js'
import { InvalidArgument, NotJoined } from '../errors/index.js'
import { escapeGlob } from '../query/index.js'
import { groupsOf, toGroupEvents } from './group-events.js'
import type { Membership } from './group-events.js'
import { GROUP_MEMBER_KIND } from '../model/groups.js'
import type {
  GroupEvent,
  GroupMonitor,
  MemberMeta,
  MemberWithMeta,
  ProcessGroupsApi,
} from '../model/groups.js'
import type { PidLike } from '../model/types.js'

/** The built-in kind of group memberships: one record per (scope, group, pid), owned by the pid. */
const MAX_GROUP_LENGTH = 512
/** Queue bound of a group monitor, in events; overflow answers with `reset` + snapshot. */
const MONITOR_BUFFER = 10_000

/**
 * Process groups with Erlang/OTP `pg` semantics, as records: a membership is a record owned by
 * the member, so it leaves in the same commit as its process's exit, and monitors are watches.
 * Multiplicity lives in the record's `count`.
 */
export class ProcessGroups implements ProcessGroupsApi {
  readonly scope: string
  readonly #ds: Kernel

  constructor(ds: Kernel, scope: string) {
    if (typeof scope !== 'string' || scope.length === 0 || scope.length > MAX_GROUP_LENGTH) {
      throw new InvalidArgument('a group scope must be a non-empty string')
    }
    this.#ds = ds
    this.scope = scope
  }

  async join(group: string, pids: PidLike | readonly PidLike[], meta?: MemberMeta): Promise<'ok'> {
    checkGroup(group)
    const list = toPids(pids)
    for (const pid of list) {
      if (!this.#ds.isAlive(pid)) {
        throw new InvalidArgument(
          `cannot join ${pid} to group "${group}": it is not a live process of this dataspace`,
        )
      }
    }
    if (meta !== undefined) freezeJson(meta, 'meta', this.#ds.maxValueBytes)
    await this.#ds.commit(null, (tx) => {
      for (const [pid, times] of counts(list)) {
        const id = this.#id(group, pid)
        const current = tx.read(GROUP_MEMBER_KIND, id)?.data as Membership | undefined
        const data: Membership = {
          scope: this.scope,
          group,
          pid,
          node: this.#ds.node,
          count: (current?.count ?? 0) + times,
          meta: meta ?? current?.meta ?? null,
        }
        tx.assert({ kind: GROUP_MEMBER_KIND, id, data: Object.freeze(data), owner: pid })
      }
    })
    return 'ok'
  }

  async leave(group: string, pids: PidLike | readonly PidLike[]): Promise<'ok' | 'not_joined'> {
    checkGroup(group)
    const list = toPids(pids)
    const { result: left } = await this.#ds.commit(null, (tx) => {
      let removed = 0
      for (const [pid, times] of counts(list)) {
        const record = tx.read(GROUP_MEMBER_KIND, this.#id(group, pid))
        if (record === undefined) continue
        const current = record.data as Membership
        removed++
        if (current.count <= times) tx.remove(record, 'retract')
        else {
          const data: Membership = { ...current, count: current.count - times }
          tx.assert({
            kind: GROUP_MEMBER_KIND,
            id: record.id,
            data: Object.freeze(data),
            owner: pid,
          })
        }
      }
      return removed
    })
    return left > 0 ? 'ok' : 'not_joined'
  }

  async members(group: string): Promise<string[]> {
    checkGroup(group)
    return this.#ds.released(groupsOf(this.#memberships(group))[group] ?? [])
  }

  async localMembers(group: string): Promise<string[]> {
    checkGroup(group)
    const local = this.#memberships(group).filter(
      (record) => (record.data as Membership).node === this.#ds.node,
    )
    return this.#ds.released(groupsOf(local)[group] ?? [])
  }

  async membersWithMeta(group: string): Promise<MemberWithMeta[]> {
    checkGroup(group)
    return this.#ds.released(
      this.#memberships(group).map((record) => {
        const { pid, count, meta } = record.data as Membership
        return { pid, count, meta }
      }),
    )
  }

  async updateMeta(group: string, pid: PidLike, meta: MemberMeta): Promise<void> {
    checkGroup(group)
    const [member] = toPids(pid)
    freezeJson(meta, 'meta', this.#ds.maxValueBytes)
    await this.#ds.commit(null, (tx) => {
      const record = tx.read(GROUP_MEMBER_KIND, this.#id(group, member as string))
      if (record === undefined) throw new NotJoined(`${member} is not a member of group "${group}"`)
      const data: Membership = { ...(record.data as Membership), meta }
      tx.assert({
        kind: GROUP_MEMBER_KIND,
        id: record.id,
        data: Object.freeze(data),
        owner: record.owner,
      })
    })
  }

  async whichGroups(): Promise<string[]> {
    return this.#ds.released(Object.keys(groupsOf(this.#memberships())))
  }

  async whichLocalGroups(): Promise<string[]> {
    const local = this.#memberships().filter(
      (record) => (record.data as Membership).node === this.#ds.node,
    )
    return this.#ds.released(Object.keys(groupsOf(local)))
  }

  monitor(group?: string): GroupMonitor {
    if (group !== undefined) checkGroup(group)
    const selector = this.#selector(group)
    const stream: QueuedStream<GroupEvent> = new QueuedStream<GroupEvent>(
      () => observation.close(),
      undefined,
      this.#ds.gate,
    )
    const snapshot = (records: readonly DataspaceRecord[], revision: number): GroupEvent => ({
      type: 'snapshot',
      groups: groupsOf(records),
      revision,
    })
    const observation = this.#ds.observe(
      GROUP_MEMBER_KIND,
      selector,
      (events) => {
        const translated = toGroupEvents(events)
        if (stream.length + translated.length <= MONITOR_BUFFER) {
          for (const event of translated) stream.push(event)
          return
        }
        // Too slow a consumer: start it over from a snapshot rather than skip changes.
        stream.clear()
        stream.push({ type: 'reset', reason: 'overflow' })
        stream.push(snapshot(this.#ds.query(GROUP_MEMBER_KIND, selector), this.#ds.revision))
      },
      (reason) => stream.end(reason),
    )
    stream.push(snapshot(observation.records, observation.revision))
    return stream
  }

  async broadcast(from: PidLike, group: string, message: unknown): Promise<number> {
    return this.#broadcast(from, group, message, false)
  }

  async broadcastLocal(from: PidLike, group: string, message: unknown): Promise<number> {
    return this.#broadcast(from, group, message, true)
  }

  /** Each distinct member of `group` (the targets of `send({ group })`). */
  distinctMembers(group: string): string[] {
    checkGroup(group)
    return this.#memberships(group).map((record) => (record.data as Membership).pid)
  }

  #broadcast(from: PidLike, group: string, message: unknown, localOnly: boolean): number {
    checkGroup(group)
    const [sender] = toPids(from)
    // Checked before delivery, as `send` does: every member shares it, remote ones encode it.
    freezeJson(message, 'message', this.#ds.maxValueBytes)
    let delivered = 0
    for (const record of this.#memberships(group)) {
      const membership = record.data as Membership
      if (localOnly && membership.node !== this.#ds.node) continue
      if (this.#ds.deliver(membership.pid, sender as string, message)) delivered++
    }
    return delivered
  }

  #memberships(group?: string): readonly DataspaceRecord[] {
    return this.#ds.query(GROUP_MEMBER_KIND, this.#selector(group))
  }

  /**
   * Memberships of a scope (or of one group) by id prefix: ids are `["scope","group","pid"]` in
   * JSON, whose escaping keeps any quote inside a name from ending the prefix early. A prefix is
   * served by the id index, comes back in order, and lets the watch hub find a monitor without
   * testing it against every membership change.
   */
  #selector(group: string | undefined): { id: string } {
    const head = JSON.stringify(group === undefined ? [this.scope] : [this.scope, group])
    return { id: `${escapeGlob(head.slice(0, -1))},*` }
  }

  #id(group: string, pid: string): string {
    return JSON.stringify([this.scope, group, pid])
  }
}

function checkGroup(group: unknown): asserts group is string {
  if (typeof group !== 'string' || group.length === 0 || group.length > MAX_GROUP_LENGTH) {
    throw new InvalidArgument(
      `a group name must be a non-empty string of at most ${MAX_GROUP_LENGTH} characters`,
    )
  }
}

function toPids(pids: PidLike | readonly PidLike[]): string[] {
  const list = Array.isArray(pids) ? (pids as readonly PidLike[]) : [pids as PidLike]
  if (list.length === 0) throw new InvalidArgument('expected a pid or a non-empty list of pids')
  return list.map(toPid)
}

/** pid → how many times it appears in the list (a multiset). */
function counts(pids: readonly string[]): Map<string, number> {
  const map = new Map<string, number>()
  for (const pid of pids) map.set(pid, (map.get(pid) ?? 0) + 1)
  return map
}
