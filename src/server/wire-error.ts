import { DataspaceError } from '../errors/index.js'
import type { ErrorCode } from '../errors/index.js'

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
