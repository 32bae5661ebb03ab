import type { Dataspace } from '../dataspace.js'
import { OPERATIONS } from '../protocol/index.js'
import type { Adds, OperationName, OpArgs } from '../protocol/index.js'
import type { Session } from './session-table.js'

/**
 * How many records a call could add to what its session owns, for `maxRecordsPerSession`, from
 * the operation table's `adds` (`src/protocol/operations.ts`). Cheap and conservative: an update
 * of a record the session already owns adds nothing, a new owned record adds one, an ownerless
 * one (`owner: null`, a KV key without owner) none. Reads and removals add nothing, so a
 * session at its limit can always make room.
 */
export function recordsAdded<N extends OperationName>(
  ds: Dataspace,
  session: Session,
  name: N,
  args: OpArgs<N>,
): number {
  const a = args as Readonly<Record<string, unknown>>
  const adds: Adds | undefined = (OPERATIONS[name] as { readonly adds?: Adds }).adds
  if (adds === undefined) return 0
  switch (adds) {
    case 'one':
      return 1
    case 'pids':
      return typeof a.pids === 'string' ? 1 : (a.pids as readonly string[]).length
    case 'owner': {
      const owner = (a.options as { owner?: unknown } | undefined)?.owner
      return owner === undefined || owner === null ? 0 : 1
    }
    case 'assert':
      return assertAdds(ds, session, a.kind, a.id, a.options)
    case 'transaction':
      return transactionAdds(ds, session, (a.request as { then: unknown }).then)
  }
}

function assertAdds(
  ds: Dataspace,
  session: Session,
  kind: unknown,
  id: unknown,
  options: unknown,
): number {
  if ((options as { owner?: unknown } | undefined)?.owner === null) return 0
  if (typeof kind !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return 1
  const owner = ds.store(kind)?.records.get(String(id))?.owner
  return owner !== undefined && owner !== null && session.processes.has(owner) ? 0 : 1
}

/** What a transaction's `then` could add: its owned asserts and its claims. */
function transactionAdds(ds: Dataspace, session: Session, then: unknown): number {
  if (!Array.isArray(then)) return 0
  let added = 0
  for (const op of then as unknown[]) {
    const o = (typeof op === 'object' && op !== null ? op : {}) as Record<string, unknown>
    if (o.op === 'assert') added += assertAdds(ds, session, o.kind, o.id, o)
    else if (o.op === 'claim') added += 1
  }
  return added
}
