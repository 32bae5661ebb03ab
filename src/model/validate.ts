import { InvalidArgument } from '../errors/index.js'
import { checkText, describeValue } from './json-value.js'

export {
  checkText,
  DEFAULT_MAX_VALUE_BYTES,
  freezeJson,
  jsonBytes,
  MAX_DEPTH,
} from './json-value.js'
/** A short description of a value for messages (never its whole content). */
export const describe = describeValue

const KIND_SEGMENT = /^[A-Za-z0-9_-]+$/
/** Longest id accepted: ids are keys in several indexes and travel in every event. */
export const MAX_ID_LENGTH = 1024

/**
 * Checks a kind name: dot-separated segments of `[A-Za-z0-9_-]`. Names starting with `$`
 * are reserved for built-ins; `allowReserved` is how the facades get at them.
 */
export function checkKind(kind: unknown, allowReserved = false): string {
  // Every operation checks its kind: remember the names that passed (bounded, they are few).
  if (
    typeof kind === 'string' &&
    checkedKinds.has(kind) &&
    (allowReserved || !kind.startsWith('$'))
  ) {
    return kind
  }
  if (typeof kind !== 'string' || kind.length === 0) {
    throw new InvalidArgument(`kind must be a non-empty string, got ${describe(kind)}`)
  }
  const body = kind.startsWith('$') ? kind.slice(1) : kind
  if (kind.startsWith('$') && !allowReserved) {
    throw new InvalidArgument(
      `kind "${kind}" is reserved: names starting with "$" belong to built-ins`,
    )
  }
  if (kind.length > 253 || !body.split('.').every((segment) => KIND_SEGMENT.test(segment))) {
    throw new InvalidArgument(
      `invalid kind "${kind}": use dot-separated segments of letters, digits, "_" and "-" (at most 253 characters)`,
    )
  }
  if (checkedKinds.size >= 10_000) checkedKinds.clear()
  checkedKinds.add(kind)
  return kind
}

const checkedKinds = new Set<string>()

/** Canonicalises an id: numbers become their decimal string; empty or over-long ids are rejected. */
export function checkId(id: unknown): string {
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new InvalidArgument(`a numeric id must be a non-negative safe integer, got ${id}`)
    }
    return String(id)
  }
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidArgument(`id must be a non-empty string or a number, got ${describe(id)}`)
  }
  if (id.length > MAX_ID_LENGTH) {
    throw new InvalidArgument(`id is ${id.length} characters long; the limit is ${MAX_ID_LENGTH}`)
  }
  return checkText('id', id)
}

/**
 * The longest `ttl` a record or KV key may have: 10 years (365-day years) in ms. Far beyond any
 * lease, and far below where `now + ttl` stops being an exact integer.
 */
export const MAX_TTL_MS = 10 * 365 * 24 * 60 * 60 * 1000

/**
 * Checks a `ttl`: a positive integer number of milliseconds, at most {@link MAX_TTL_MS}. Every
 * backend stores the deadline as an integer, so a fraction is refused rather than rounded.
 */
export function checkTtl(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new InvalidArgument(
      `${name} must be a positive integer number of milliseconds, got ${describe(value)}`,
    )
  }
  if (value > MAX_TTL_MS) {
    throw new InvalidArgument(`${name} is ${value} ms; the longest is ${MAX_TTL_MS} ms (10 years)`)
  }
  return value
}

/** Checks an `ifRevision` / condition revision: a non-negative integer (0 = must not exist). */
export function checkRevision(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgument(
      `${name} must be a non-negative integer revision, got ${describe(value)}`,
    )
  }
  return value
}

/**
 * Checks a bound given as an option (a queue size, a byte cap, a timeout): a positive safe
 * integer. `unit` follows "integer" in the message (` of bytes`).
 */
export function checkPositive(name: string, value: number, unit = ''): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InvalidArgument(`${name} must be a positive integer${unit}, got ${value}`)
  return value
}

/** Checks a page size. */
export function checkLimit(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgument(`limit must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/** The pid of a pid or process object. */
export function toPid(value: unknown): string {
  const pid = typeof value === 'string' ? value : (value as { id?: unknown } | null)?.id
  if (typeof pid !== 'string' || pid.length === 0) {
    throw new InvalidArgument(`expected a pid or a process, got ${describe(value)}`)
  }
  return pid
}
