import { DataspaceError, Unavailable } from '../errors/index.js'
import type { OperationName } from '../protocol/index.js'
import type { Connection } from './connection.js'
import type { OwnedState } from './owned-state.js'
import type { RemoteProcess } from './remote-process.js'

interface Conflict {
  readonly what: string
  readonly error: DataspaceError
}

/**
 * Rebuilds a lost session's state on the new one, in dependency order within one pipelined
 * burst: child processes (under their new pids), then records, memberships, names and KV keys.
 * The server applies a frame's calls in order, so each write finds its process already open.
 * Everything is attempted; each failure is a conflict, and the rest still goes through.
 */
export async function restore(
  connection: Connection,
  owned: OwnedState,
  children: readonly RemoteProcess[],
): Promise<{ restored: number; conflicts: Conflict[] }> {
  const now = Date.now()
  const attempts: { what: string; done: Promise<unknown> }[] = []
  const call = (what: string, op: OperationName, args: Record<string, unknown>): void => {
    attempts.push({ what, done: connection.call(op, () => args, { write: true, urgent: true }) })
  }
  for (const child of children)
    call(`process ${child.name}`, 'process.open', { name: child.name, pid: child.id })
  for (const record of owned.records.values()) {
    const ttl = remaining(record.expiresAt, now)
    if (ttl === 0) continue // expired meanwhile: it would have been retracted anyway
    const options = { labels: record.labels, ...(ttl === undefined ? {} : { ttl }) }
    call(`record ${record.kind}/${record.id}`, 'assert', {
      pid: record.owner.id,
      kind: record.kind,
      id: record.id,
      data: record.data,
      options,
    })
  }
  for (const m of owned.memberships.values()) {
    const pids = Array.from({ length: m.count }, () => m.member.id)
    call(`group ${m.scope}/${m.group}`, 'groups.join', {
      scope: m.scope,
      group: m.group,
      pids,
      ...(m.meta === undefined ? {} : { meta: m.meta }),
    })
  }
  for (const n of owned.names.values()) {
    call(`name ${n.name}`, 'names.register', {
      pid: n.owner.id,
      name: n.name,
      ...(n.meta === undefined ? {} : { meta: n.meta }),
    })
  }
  for (const key of owned.keys.values()) {
    const ttl = remaining(key.expiresAt, now)
    if (ttl === 0) continue
    call(`kv ${key.bucket}/${key.key}`, 'kv.put', {
      bucket: key.bucket,
      key: key.key,
      value: key.value,
      options: { owner: key.owner.id, ...(ttl === undefined ? {} : { ttl }) },
    })
  }
  const settled = await Promise.allSettled(attempts.map((a) => a.done))
  const conflicts: Conflict[] = []
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') return
    const reason: unknown = outcome.reason
    const error = reason instanceof DataspaceError ? reason : new Unavailable(String(reason))
    conflicts.push({ what: (attempts[i] as { what: string }).what, error })
  })
  return { restored: settled.length - conflicts.length, conflicts }
}

/** Milliseconds left of a TTL (0 when past), or `undefined` for no TTL. */
function remaining(expiresAt: number | undefined, now: number): number | undefined {
  if (expiresAt === undefined) return undefined
  return Math.max(0, expiresAt - now)
}
