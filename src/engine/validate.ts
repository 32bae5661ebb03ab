import { InvalidArgument } from '../errors/index.js'

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
  return id
}

/** Checks a millisecond duration such as `ttl`. */
export function checkDuration(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgument(
      `${name} must be a positive number of milliseconds, got ${describe(value)}`,
    )
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

/** Checks a page size. */
export function checkLimit(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgument(`limit must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/**
 * Checks that `value` is JSON-shaped (so embedded and remote use behave the same) and deep-freezes
 * it, because a record's data is shared by every reader from then on. Frozen subtrees are
 * assumed already checked, which makes re-asserting a record's own data cheap.
 */
export function freezeJson<T>(value: T, what = 'data'): T {
  freezeValue(value, what, 0)
  return value
}

const MAX_DEPTH = 64

function freezeValue(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value))
        throw new InvalidArgument(`${path} is ${value}: only finite numbers are JSON`)
      return
    case 'object':
      break
    case 'undefined':
    case 'bigint':
    case 'symbol':
    case 'function':
      throw new InvalidArgument(
        `${path} is a ${typeof value}: data must be JSON (null, boolean, number, string, array, object)`,
      )
  }
  if (value === null || Object.isFrozen(value)) return
  if (depth >= MAX_DEPTH) throw new InvalidArgument(`${path} nests deeper than ${MAX_DEPTH} levels`)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) freezeValue(value[i], `${path}[${i}]`, depth + 1)
    Object.freeze(value)
    return
  }
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) {
    throw new InvalidArgument(
      `${path} is a ${describe(value)}: data must be plain objects and arrays`,
    )
  }
  for (const key of Object.keys(value)) {
    const child = (value as Record<string, unknown>)[key]
    // JSON drops undefined properties; accept them so optional fields need no cleanup.
    if (child !== undefined) freezeValue(child, `${path}.${key}`, depth + 1)
  }
  // Children first, so invalid data leaves the caller's object unfrozen (and a cycle hits MAX_DEPTH).
  Object.freeze(value)
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'object') {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)
      ?.constructor?.name
    return name !== undefined && name !== 'Object' ? name : 'object'
  }
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${value}`
  }
  return typeof value
}

/** The pid of a pid or process object. */
export function toPid(value: unknown): string {
  const pid = typeof value === 'string' ? value : (value as { id?: unknown } | null)?.id
  if (typeof pid !== 'string' || pid.length === 0) {
    throw new InvalidArgument(`expected a pid or a process, got ${describe(value)}`)
  }
  return pid
}
