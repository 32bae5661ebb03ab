import { DataspaceError } from '../errors/index.js'
import type { Principal } from './auth.js'
import type { ServerState } from './request-context.js'

/**
 * Reports an error answered to a client: a 500 goes to `onInternalError` (logged by default),
 * an auth failure is logged at `warn` with the token's name only (never the token), at most once
 * a second per kind of failure with a count of those `suppressed` in between; the rest
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
  // Throttled: a client must not be able to write a log line per request it makes.
  if (error.code === 'Unauthorized') {
    state.warnings.warn('auth failed', { transport, reason: error.message }, 'auth failed')
  } else if (error.code === 'Forbidden' && principal !== undefined) {
    const fields = { transport, token: principal.name, reason: error.message }
    state.warnings.warn('forbidden', fields, 'forbidden')
  }
}
