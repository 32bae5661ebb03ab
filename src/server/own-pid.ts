import { Forbidden } from '../errors/index.js'
import type { Session } from './session-table.js'

/**
 * `pid` when it is a process of `session` — its own or a child `<pid>.<n>`, alive or exited —
 * else `Forbidden`. The one rule of every transport for each pid a caller acts as, joins to or
 * removes from a group, or makes the owner of a key: a caller without a session has no pid.
 * Children are matched exactly (digits after the dot), not by prefix: another client may
 * choose a process name that makes its pid start with this session's pid.
 */
export function checkOwnPid(session: Session | undefined, pid: string): string {
  if (session !== undefined) {
    const own = session.process.id
    if (pid === own || session.processes.has(pid)) return pid
    if (pid.startsWith(`${own}.`) && /^[1-9]\d*$/.test(pid.slice(own.length + 1))) return pid
  }
  const why =
    session === undefined ? 'this request has no session' : 'it is not a process of this session'
  throw new Forbidden(
    `${pid} is not yours (${why}): a caller may act as, join, leave or give ownership only to ` +
      `its own session's process and its children`,
  )
}
