import type { Dataspace } from '../dataspace.js'
import type { Session } from './session-table.js'

/**
 * How many records a write could add to what a session owns, for `maxRecordsPerSession`.
 * Cheap and conservative: an update of a record the session already owns adds nothing, a new
 * owned record adds one, an ownerless one (`owner: null`, a KV key without owner) none. A
 * retract or delete adds nothing, so a session at its limit can always make room.
 */
export function assertAdds(
  ds: Dataspace,
  session: Session,
  kind: unknown,
  id: unknown,
  options: unknown,
): number {
  if (ownerOf(options) === null) return 0
  if (typeof kind !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return 1
  const owner = ds.store(kind)?.records.get(String(id))?.owner
  return owner !== undefined && owner !== null && session.processes.has(owner) ? 0 : 1
}

/** What a transaction's `then` could add: its owned asserts and its claims. */
export function transactionAdds(ds: Dataspace, session: Session, then: unknown): number {
  if (!Array.isArray(then)) return 0
  let added = 0
  for (const op of then as unknown[]) {
    const o = (typeof op === 'object' && op !== null ? op : {}) as Record<string, unknown>
    if (o.op === 'assert') added += assertAdds(ds, session, o.kind, o.id, o)
    else if (o.op === 'claim') added += 1
  }
  return added
}

/** A group join adds one membership per pid. */
export function joinAdds(pids: unknown): number {
  if (typeof pids === 'string') return 1
  return Array.isArray(pids) ? pids.length : 0
}

/** What one WebSocket call could add (0 for reads and for writes that only remove). */
export function callAdds(ds: Dataspace, session: Session, op: string, args: unknown): number {
  const a = (typeof args === 'object' && args !== null ? args : {}) as Record<string, unknown>
  switch (op) {
    case 'assert':
      return assertAdds(ds, session, a.kind, a.id, a.options)
    case 'transact':
      return transactionAdds(ds, session, (a.request as { then?: unknown } | undefined)?.then)
    case 'claim':
    case 'names.register':
      return 1
    case 'kv.put': {
      const owner = ownerOf(a.options)
      return owner === undefined || owner === null ? 0 : 1
    }
    case 'groups.join':
      return joinAdds(a.pids)
    default:
      return 0
  }
}

function ownerOf(options: unknown): unknown {
  return typeof options === 'object' && options !== null
    ? (options as { owner?: unknown }).owner
    : undefined
}
