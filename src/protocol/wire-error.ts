import {
  Closed,
  Conflict,
  DataspaceError,
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
} from '../errors/index.js'
import type { ErrorCode } from '../errors/index.js'

// Errors cross the wire here, both ways: `toWireError` on the server (HTTP bodies and
// WebSocket `error` messages alike), `errorFromWire` on the client.

/** The error codes on the wire: every {@link ErrorCode}, plus `Internal` for unexpected failures. */
export type WireErrorCode = ErrorCode | 'Internal'

/** The body of every error response: `{ error: { code, message, …extra } }`. */
export interface WireError {
  readonly error: {
    readonly code: WireErrorCode
    readonly message: string
    readonly [extra: string]: unknown
  }
}

/**
 * The one mapping from error code to HTTP status. A `Record` over `ErrorCode` so that adding a
 * code to the errors module fails type-checking here until it has a status.
 */
export const STATUS_BY_CODE: Readonly<Record<WireErrorCode, number>> = Object.freeze({
  InvalidArgument: 400,
  InvalidSelector: 400,
  SchemaViolation: 400,
  Unauthorized: 401,
  NotOwner: 403,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  NameTaken: 409,
  NotJoined: 409,
  ProcessExited: 410,
  TooLarge: 413,
  RateLimited: 429,
  Internal: 500,
  Unavailable: 503,
  Closed: 503,
})

// Fields every Error has; the rest of a DataspaceError's own fields (owner, holder, position,
// currentRevision, issues, pid, input) are what a client needs to act on the error.
const NOT_EXTRA = new Set(['name', 'message', 'stack', 'cause', 'code'])

/** The HTTP status and wire body for any thrown value; unknown errors hide their details. */
export function toWireError(error: unknown): { status: number; body: WireError } {
  if (!(error instanceof DataspaceError)) {
    return {
      status: 500,
      body: { error: { code: 'Internal', message: 'internal server error' } },
    }
  }
  const extra: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(error)) {
    if (!NOT_EXTRA.has(key) && value !== undefined) extra[key] = value
  }
  return {
    status: STATUS_BY_CODE[error.code],
    body: { error: { code: error.code, message: error.message, ...extra } },
  }
}

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
