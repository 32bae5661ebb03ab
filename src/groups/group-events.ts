import type { DataspaceRecord, WatchEvent } from '../model/types.js'
import type { GroupEvent, MemberMeta } from '../model/groups.js'

/** The data of a `$group.member` record: one distinct pid in one group, with its join count. */
export interface Membership {
  readonly scope: string
  readonly group: string
  readonly pid: string
  readonly node: string
  readonly count: number
  readonly meta: MemberMeta
}

/** The members of each group in `records`, each pid repeated by its join count. */
export function groupsOf(records: readonly DataspaceRecord[]): Record<string, string[]> {
  const groups: Record<string, string[]> = {}
  for (const record of records) {
    const { group, pid, count } = record.data as Membership
    const pids = (groups[group] ??= [])
    for (let i = 0; i < count; i++) pids.push(pid)
  }
  return groups
}

/**
 * Turns one commit's membership changes into `pg` events: per group, one `join` with every pid
 * that joined (a batch join is one event) and one `leave` with every pid that left, each pid
 * repeated by how many memberships it gained or lost; a metadata change alone is an `update`.
 */
export function toGroupEvents(events: readonly WatchEvent[]): GroupEvent[] {
  const joins = new Map<string, string[]>()
  const leaves = new Map<string, string[]>()
  const updates: GroupEvent[] = []
  let revision = 0
  const add = (map: Map<string, string[]>, group: string, pid: string, times: number): void => {
    let pids = map.get(group)
    if (pids === undefined) map.set(group, (pids = []))
    for (let i = 0; i < times; i++) pids.push(pid)
  }
  for (const event of events) {
    switch (event.type) {
      case 'asserted': {
        revision = event.revision
        const now = event.record.data as Membership
        const before = event.previous?.data as Membership | undefined
        const delta = now.count - (before?.count ?? 0)
        if (delta > 0) add(joins, now.group, now.pid, delta)
        else if (delta < 0) add(leaves, now.group, now.pid, -delta)
        else if (before !== undefined && JSON.stringify(before.meta) !== JSON.stringify(now.meta)) {
          updates.push({ type: 'update', group: now.group, pid: now.pid, meta: now.meta, revision })
        }
        break
      }
      case 'retracted': {
        revision = event.revision
        const gone = event.record.data as Membership
        add(leaves, gone.group, gone.pid, gone.count)
        break
      }
      case 'snapshot':
      case 'message':
      case 'reset':
        break
      default:
        event satisfies never
    }
  }
  const out: GroupEvent[] = []
  for (const [group, pids] of leaves) out.push({ type: 'leave', group, pids, revision })
  for (const [group, pids] of joins) out.push({ type: 'join', group, pids, revision })
  return out.concat(updates)
}
