import type { Principal } from './auth.js'
import { callerKey } from './limits.js'
import type { ServerState } from './request-context.js'
import type { Session } from './session-table.js'

/**
 * Opens a session for a caller on either transport, counted against its token (auth on) or its
 * client address (auth off) and against the server's total: past `maxSessionsPerToken`,
 * `maxSessionsPerAddress` or `maxSessions` it is `TooLarge`. The slot frees when the session's
 * process exits, however it ends (DELETE, lease expiry, shutdown).
 */
export function openSession(
  state: ServerState,
  name: unknown,
  ttl: unknown,
  principal: Principal | undefined,
  address: string | undefined,
): Session {
  const release = state.guard.openSession(callerKey(principal?.name, address), state.sessions.size)
  let session: Session
  try {
    session = state.sessions.open(name, ttl, principal?.name ?? null)
  } catch (error) {
    release()
    throw error
  }
  if (principal !== undefined) state.sessionOwners.set(session, principal)
  session.process.exited.then(release, release)
  return session
}
