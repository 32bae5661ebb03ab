import { DataspaceError } from '../errors/index.js'
import type { Principal } from './auth.js'
import type { ServerState } from './request-context.js'

/**
 * Reports an error answered to a client: a 500 goes to `onInternalError` (logged by default),
 * an auth failure is logged at `warn` with the token's name only (never the token), the rest
 * are the client's business and only counted by the operations metric.
 */
export function reportError(
  state: ServerState,
  error: unknown,
  status: number,
  principal: Principal | undefined,
  transport: 'http' | 'ws',
): void {
  if (status === 500) {
    state.options.onInternalError(error)
    return
  }
  if (!(error instanceof DataspaceError)) return
  if (error.code === 'Unauthorized') {
    state.logger.warn({ transport, reason: error.message }, 'auth failed')
  } else if (error.code === 'Forbidden' && principal !== undefined) {
    state.logger.warn({ transport, token: principal.name, reason: error.message }, 'forbidden')
  }
}
