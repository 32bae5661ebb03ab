import { parseArgs, ownPidsOf, rightsOf } from '../protocol/index.js'
import type { Need, OperationName, OpArgs } from '../protocol/index.js'
import { authorize } from './auth.js'
import type { Principal } from './auth.js'
import { checkOwnPid } from './own-pid.js'
import type { Session } from './session-table.js'

/**
 * Holds one call to the operation table's rules, the same for every transport: its arguments'
 * shape, then every right it needs (`Forbidden` naming the first one the token lacks), then
 * every pid it acts as, joins, removes or makes an owner (`Forbidden` unless the session's).
 * `onNeeds` sees the rights before they are checked (HTTP labels its metrics with them).
 */
export function checkCall<N extends OperationName>(
  name: N,
  raw: unknown,
  session: Session | undefined,
  principal: Principal | undefined,
  onNeeds?: (needs: readonly Need[]) => void,
): OpArgs<N> {
  const args = parseArgs(name, raw)
  const needs = rightsOf(name, args)
  onNeeds?.(needs)
  if (principal !== undefined) for (const [kind, right] of needs) authorize(principal, kind, right)
  for (const pid of ownPidsOf(name, args)) checkOwnPid(session, pid)
  return args
}
