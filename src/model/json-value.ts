import { InvalidArgument, TooLarge } from '../errors/index.js'

/**
 * The one rule for every value a client hands the engine — record data, labels, messages,
 * metadata, KV values, claim patches, transaction conditions (`docs/semantics.md`, "Values"):
 * JSON-shaped (null, booleans, finite numbers, strings, arrays, plain objects), nested at most
 * {@link MAX_DEPTH} levels, at most `maxBytes` in its JSON encoding (UTF-8), and every string —
 * object keys included — storable by every backend: no U+0000 and no lone surrogate (PostgreSQL
 * refuses both in `jsonb` and `text`). Checked in process and remote alike, before anything is
 * staged, so a value that passes is one every backend stores and every encoder can write.
 */
export const MAX_DEPTH = 64

/** The default bound on one value's JSON encoding: 1 MiB, the server's default body size. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

// Sizes and heights of containers already checked and frozen: re-asserting a record's own data
// or a patch that reuses its subtrees costs a lookup, not a walk. Only frozen containers are
// remembered (they cannot change), and only ones this module checked (a caller's own
// Object.freeze proves nothing about what is inside).
const checked = new WeakMap<object, number>()
// Packs a container's encoded size and height in one number (height ≤ MAX_DEPTH < 128).
const HEIGHT = 128

/** The part of a string that makes it unstorable: U+0000 or a surrogate without its pair. */
// eslint-disable-next-line no-control-regex -- U+0000 is exactly what it looks for
const UNSTORABLE = /[\u0000\p{Cs}]/u

/**
 * `InvalidArgument` unless `text` holds only characters every backend can store (no U+0000, no
 * lone surrogate). `what` names it in the message.
 */
export function checkText(what: string, text: string): string {
  const bad = UNSTORABLE.exec(text)
  if (bad !== null) throw unstorable(what, text, bad.index)
  return text
}

function unstorable(what: string, text: string, index: number): InvalidArgument {
  const code = text.charCodeAt(index)
  const char = code === 0 ? 'U+0000' : `a lone surrogate U+${code.toString(16).toUpperCase()}`
  return new InvalidArgument(
    `${what} holds ${char} at offset ${index}: strings must not contain U+0000 or unpaired surrogates (no backend can store them)`,
  )
}

/**
 * Checks `value` against the value rule and deep-freezes it (a stored value is shared by every
 * reader from then on). `what` names it in errors (`data`, `message`, `meta`, …), followed by the
 * path to the offending part. Returns `value`.
 */
export function freezeJson<T>(value: T, what = 'data', maxBytes = DEFAULT_MAX_VALUE_BYTES): T {
  const walk = new Walk(what, maxBytes)
  walk.visit(value, 0)
  return value
}

/** The UTF-8 size of `value`'s JSON encoding, for a value that passed {@link freezeJson}. */
export function jsonBytes(value: unknown): number {
  if (value !== null && typeof value === 'object') {
    const packed = checked.get(value)
    if (packed !== undefined) return Math.floor(packed / HEIGHT)
  }
  const walk = new Walk('value', Infinity)
  walk.visit(value, 0)
  return walk.total
}

class Walk {
  total = 0
  readonly #what: string
  readonly #max: number
  readonly #path: (string | number)[] = []

  constructor(what: string, max: number) {
    this.#what = what
    this.#max = max
  }

  /** Visits `value` at `depth`; answers the height of the containers it holds (0 for a leaf). */
  visit(value: unknown, depth: number): number {
    switch (typeof value) {
      case 'string':
        this.#add(this.#string(value))
        return 0
      case 'boolean':
        this.#add(value ? 4 : 5)
        return 0
      case 'number':
        if (!Number.isFinite(value))
          throw new InvalidArgument(`${this.#where()} is ${value}: only finite numbers are JSON`)
        this.#add(String(value).length)
        return 0
      case 'object':
        break
      case 'undefined':
      case 'bigint':
      case 'symbol':
      case 'function':
        throw new InvalidArgument(
          `${this.#where()} is a ${typeof value}: ${this.#what} must be JSON (null, boolean, number, string, array, object)`,
        )
    }
    if (value === null) {
      this.#add(4)
      return 0
    }
    const packed = checked.get(value)
    if (packed !== undefined) {
      const height = packed % HEIGHT
      if (depth + height > MAX_DEPTH) throw this.#tooDeep()
      this.#add(Math.floor(packed / HEIGHT))
      return height
    }
    if (depth >= MAX_DEPTH) throw this.#tooDeep()
    const start = this.total
    const height =
      1 + (Array.isArray(value) ? this.#array(value, depth) : this.#object(value, depth))
    // Children first, so invalid data leaves the caller's object unfrozen (and a cycle hits MAX_DEPTH).
    Object.freeze(value)
    checked.set(value, (this.total - start) * HEIGHT + height)
    return height
  }

  #array(value: readonly unknown[], depth: number): number {
    let height = 0
    this.#add(2 + Math.max(0, value.length - 1))
    for (let i = 0; i < value.length; i++) {
      this.#path.push(i)
      height = Math.max(height, this.visit(value[i], depth + 1))
      this.#path.pop()
    }
    return height
  }

  #object(value: object, depth: number): number {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) {
      throw new InvalidArgument(
        `${this.#where()} is a ${describeValue(value)}: ${this.#what} must be plain objects and arrays`,
      )
    }
    let height = 0
    let members = 0
    for (const key of Object.keys(value)) {
      const child = (value as Record<string, unknown>)[key]
      // JSON drops undefined properties; accept them so optional fields need no cleanup.
      if (child === undefined) continue
      this.#path.push(key)
      const bad = UNSTORABLE.exec(key)
      if (bad !== null) throw unstorable(`the key of ${this.#where()}`, key, bad.index)
      this.#add(this.#string(key) + 1 + (members++ > 0 ? 1 : 0))
      height = Math.max(height, this.visit(child, depth + 1))
      this.#path.pop()
    }
    this.#add(2)
    return height
  }

  /** The encoded size of a string (quotes and escapes included), after checking it is storable. */
  #string(text: string): number {
    const bad = UNSTORABLE.exec(text)
    if (bad !== null) throw unstorable(this.#where(), text, bad.index)
    let bytes = 2
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i)
      if (code < 0x80) {
        // JSON escapes `"`, `\` and control characters (\n and friends in 2 bytes, others in 6).
        if (code >= 0x20) bytes += code === 0x22 || code === 0x5c ? 2 : 1
        else bytes += code === 8 || code === 9 || code === 10 || code === 12 || code === 13 ? 2 : 6
      } else if (code < 0x800) bytes += 2
      else if (code >= 0xd800 && code <= 0xdbff) {
        bytes += 4 // a pair (lone ones were refused above): one 4-byte character
        i++
      } else bytes += 3
    }
    return bytes
  }

  #add(bytes: number): void {
    this.total += bytes
    if (this.total > this.#max) {
      throw new TooLarge(
        `${this.#what} is over ${this.#max} bytes as JSON (the limit of one value; at ${this.#where()})`,
        { limit: 'maxValueBytes' },
      )
    }
  }

  #tooDeep(): InvalidArgument {
    return new InvalidArgument(
      `${this.#where()} nests deeper than ${MAX_DEPTH} levels (the limit of one value)`,
    )
  }

  /** The path to the part being visited, e.g. `data.items[3].name` (long keys shortened). */
  #where(): string {
    let where = this.#what
    for (const part of this.#path) {
      if (typeof part === 'number') where += `[${part}]`
      else where += /^[A-Za-z_$][\w$]{0,40}$/.test(part) ? `.${part}` : `[${quote(part)}]`
      if (where.length > 300) return `${where.slice(0, 300)}…`
    }
    return where
  }
}

function quote(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)
}

/** A short description of a value for messages (never its whole content). */
export function describeValue(value: unknown): string {
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
