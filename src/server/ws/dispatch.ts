import { InvalidArgument } from '../../errors/index.js'
import type { Stream } from '../../model/index.js'
import type { OperationName, OperationSpec } from '../../protocol/index.js'
import type { Principal } from '../auth.js'
import { checkCall } from '../check-call.js'
import { Caller, HANDLERS } from '../handlers.js'
import type { OpEnv } from '../handlers.js'
import type { LimitGuard } from '../limits.js'
import { recordsAdded } from '../record-quota.js'
import type { Session } from '../session-table.js'

/** A WebSocket call, checked and ready to run: a stream to open or a unary call to run. */
export type PreparedCall =
  | { readonly stream: true; readonly open: () => Stream<unknown> }
  | { readonly stream: false; readonly write: boolean; readonly run: () => Promise<unknown> }

/**
 * Checks a `call` of `op` (whose table entry, `operation(op)`, the connection has looked up for
 * its metrics already) against the operation table (an unknown op, the arguments' shape, rights,
 * own pids) and binds it to its handler. The record quota is checked when a unary call runs:
 * inside the durable-answer cache, so a retried write that already succeeded is not refused.
 */
export function prepareCall(
  env: OpEnv & { readonly guard: LimitGuard },
  op: string,
  spec: OperationSpec | undefined,
  raw: unknown,
  session: Session,
  principal: Principal | undefined,
): PreparedCall {
  if (spec === undefined) throw new InvalidArgument(`unknown op ${JSON.stringify(op)}`)
  const name = op as OperationName
  const args = checkCall(name, raw, session, principal)
  const caller = new Caller(session)
  const handler = HANDLERS[name] as unknown as (
    env: OpEnv,
    args: unknown,
    caller: Caller,
  ) => Promise<unknown> & Stream<unknown>
  if (spec.stream) return { stream: true, open: () => handler(env, args, caller) }
  return {
    stream: false,
    write: spec.write,
    run: () => {
      env.guard.checkRecords(session, recordsAdded(env.ds, session, name, args))
      return handler(env, args, caller)
    },
  }
}
