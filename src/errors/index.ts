/**
 * Every error the dataspace throws is a {@link DataspaceError} with a stable string `code`.
 * Callers (and the network client, which maps wire errors back to these classes) switch on
 * `code` or `instanceof`, never on message text.
 *
 * @example
 * try { await proc.retract('api.route', 'x') }
 * catch (err) { if (err instanceof NotFound) { … } }
 */
export type ErrorCode =
  | 'NotOwner'
  | 'NotFound'
  | 'Conflict'
  | 'NameTaken'
  | 'NotJoined'
  | 'InvalidSelector'
  | 'InvalidArgument'
  | 'SchemaViolation'
  | 'ProcessExited'
  | 'Unauthorized'
  | 'Forbidden'
  | 'TooLarge'
  | 'RateLimited'
  | 'Unavailable'
  | 'Closed'

/** Base class of every error the dataspace throws; `code` is stable across versions and the wire. */
export class DataspaceError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = code
  }
}

/** A write to a record owned by another process. */
export class NotOwner extends DataspaceError {
  /** The pid that owns the record (`null` for an ownerless record). */
  readonly owner: string | null
  constructor(message: string, owner: string | null, options?: { cause?: unknown }) {
    super('NotOwner', message, options)
    this.owner = owner
  }
}

/** The record, name, key or process does not exist. */
export class NotFound extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NotFound', message, options)
  }
}

/** A failed `ifRevision` or transaction condition, or a continue token whose revision is gone. */
export class Conflict extends DataspaceError {
  /** The current revision of the contested record (0 when it does not exist), when known. */
  readonly currentRevision: number | undefined
  constructor(message: string, currentRevision?: number, options?: { cause?: unknown }) {
    super('Conflict', message, options)
    this.currentRevision = currentRevision
  }
}

/** A name registered by another process. */
export class NameTaken extends DataspaceError {
  /** The pid currently holding the name. */
  readonly holder: string
  constructor(message: string, holder: string, options?: { cause?: unknown }) {
    super('NameTaken', message, options)
    this.holder = holder
  }
}

/** A leave or update for a membership that does not exist. */
export class NotJoined extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NotJoined', message, options)
  }
}

/** A selector or glob that does not parse, or names a field the kind does not declare. */
export class InvalidSelector extends DataspaceError {
  /** The selector text as given. */
  readonly input: string
  /** Zero-based offset of the offending character in `input`, when there is one. */
  readonly position: number | undefined
  constructor(message: string, input: string, position?: number, options?: { cause?: unknown }) {
    super('InvalidSelector', message, options)
    this.input = input
    this.position = position
  }
}

/** A malformed argument: a bad kind name, id, label, option or pid. */
export class InvalidArgument extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidArgument', message, options)
  }
}

/** Data rejected by the kind's Standard Schema validator. */
export class SchemaViolation extends DataspaceError {
  /** The validator's issues, as Standard Schema reports them. */
  readonly issues: readonly { readonly message: string; readonly path?: readonly unknown[] }[]
  constructor(
    message: string,
    issues: readonly { readonly message: string; readonly path?: readonly unknown[] }[],
    options?: { cause?: unknown },
  ) {
    super('SchemaViolation', message, options)
    this.issues = issues
  }
}

/** An operation by (or on behalf of) a process that has exited. */
export class ProcessExited extends DataspaceError {
  readonly pid: string
  constructor(message: string, pid: string, options?: { cause?: unknown }) {
    super('ProcessExited', message, options)
    this.pid = pid
  }
}

/** Missing or invalid credentials. */
export class Unauthorized extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Unauthorized', message, options)
  }
}

/** Valid credentials without the right for this operation. */
export class Forbidden extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Forbidden', message, options)
  }
}

/** A value, frame or batch over a configured limit. */
export class TooLarge extends DataspaceError {
  /** The server limit that was hit (a `ServerLimits` key such as `maxRecordsPerSession`), if any. */
  readonly limit: string | undefined
  constructor(message: string, options?: { cause?: unknown; limit?: string }) {
    super('TooLarge', message, options)
    this.limit = options?.limit
  }
}

/** Too many calls too fast: wait `retryAfterMs`, then retry. */
export class RateLimited extends DataspaceError {
  /** How long to wait before the next call is allowed, in ms. */
  readonly retryAfterMs: number
  /** The server limit that was hit (`maxCallsPerSecond`). */
  readonly limit: string | undefined
  constructor(
    message: string,
    retryAfterMs: number,
    options?: { cause?: unknown; limit?: string },
  ) {
    super('RateLimited', message, options)
    this.retryAfterMs = retryAfterMs
    this.limit = options?.limit
  }
}

/** The backend or server cannot be reached right now; the operation may be retried. */
export class Unavailable extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Unavailable', message, options)
  }
}

/** The dataspace, watch or connection has been closed. */
export class Closed extends DataspaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Closed', message, options)
  }
}
