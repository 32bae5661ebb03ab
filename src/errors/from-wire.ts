import {
  Closed,
  Conflict,
  Forbidden,
  InvalidArgument,
  InvalidSelector,
  NameTaken,
  NotFound,
  NotJoined,
  NotOwner,
  ProcessExited,
  RateLimited,
  SchemaViolation,
  TooLarge,
  Unauthorized,
  Unavailable,
} from './index.js'
import type { ErrorCode, DataspaceError } from './index.js'

type Extra = Readonly<Record<string, unknown>>

const str = (value: unknown): string => (typeof value === 'string' ? value : '')
const num = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined)
const limitOf = (x: Extra): { limit?: string } =>
  typeof x.limit === 'string' ? { limit: x.limit } : {}

// One constructor per code, so a client's `instanceof` and structured fields work as in process.
const BUILDERS: Readonly<Record<ErrorCode, (message: string, extra: Extra) => DataspaceError>> = {
  NotOwner: (m, x) => new NotOwner(m, typeof x.owner === 'string' ? x.owner : null),
  NotFound: (m) => new NotFound(m),
  Conflict: (m, x) => new Conflict(m, num(x.currentRevision)),
  NameTaken: (m, x) => new NameTaken(m, str(x.holder)),
  NotJoined: (m) => new NotJoined(m),
  InvalidSelector: (m, x) => new InvalidSelector(m, str(x.input), num(x.position)),
  InvalidArgument: (m) => new InvalidArgument(m),
  SchemaViolation: (m, x) =>
    new SchemaViolation(m, Array.isArray(x.issues) ? (x.issues as { message: string }[]) : []),
  ProcessExited: (m, x) => new ProcessExited(m, str(x.pid)),
  Unauthorized: (m) => new Unauthorized(m),
  Forbidden: (m) => new Forbidden(m),
  TooLarge: (m, x) => new TooLarge(m, limitOf(x)),
  RateLimited: (m, x) => new RateLimited(m, num(x.retryAfterMs) ?? 1000, limitOf(x)),
  Unavailable: (m) => new Unavailable(m),
  Closed: (m) => new Closed(m),
}

/**
 * The error a wire body `{ code, message, …extra }` stands for, as the class the engine would
 * have thrown. An unknown code (a newer server, or `Internal`) becomes `Unavailable`, keeping the
 * message: the caller can still log it, and retrying is the only sensible reaction.
 */
export function errorFromWire(wire: unknown): DataspaceError {
  const body = (typeof wire === 'object' && wire !== null ? wire : {}) as Extra
  const code = str(body.code)
  const message = str(body.message) || `server error ${code}`
  const build = Object.hasOwn(BUILDERS, code) ? BUILDERS[code as ErrorCode] : undefined
  return build === undefined ? new Unavailable(`${code}: ${message}`) : build(message, body)
}
