import { InvalidSelector } from '../errors/index.js'
import { fieldHasValue } from './field-values.js'
import { selectorError } from './selector-error.js'

/** `=` (also written `==`) or `!=`. */
export type FieldOperator = '=' | '!='

/** One `path op value` term of a field selector, unescaped. */
export interface FieldRequirement {
  /** The dotted data path, as written (without escapes and surrounding whitespace). */
  readonly path: string
  /** `path` split on `.`; every segment is non-empty. */
  readonly segments: readonly string[]
  readonly op: FieldOperator
  readonly value: string
}

/** A parsed field selector: an AND of requirements over a record's data. */
export interface FieldSelector {
  /**
   * Sorted by path, then operator, then value, without duplicates: selectors that differ only in
   * term order have the same requirements and the same text.
   */
  readonly requirements: readonly FieldRequirement[]
  /** True when there are no requirements: the selector matches everything. */
  readonly empty: boolean
  /** True when every requirement holds for `data` (see {@link fieldValues} for the comparison). */
  matches(data: unknown): boolean
  /** The canonical text, with escapes applied; parsing it gives the same requirements. */
  toString(): string
}

/**
 * Parses a Kubernetes-style field selector over data paths.
 *
 * Grammar (as `fields.ParseSelector`): terms separated by `,` (AND), each `path=value`,
 * `path==value` or `path!=value`. In paths and values `\,`, `\=`, `\\` and `\!` stand for the
 * character; any other `\x` is an error. An unescaped `=` inside a value is an error (write
 * `\=`). The value may be empty (`actor_id=`). Paths are dotted (`spec.pool`) with non-empty
 * segments; whitespace around a path is trimmed (`a=1, b=2` works), whitespace in a value is
 * kept. Empty terms (`a=1,,b=2`, a trailing comma) are skipped and `''` matches everything, as
 * in Kubernetes. The object form `{ pool: 'cpu', actor_id: '' }` is an AND of `=` terms, its
 * keys checked the same way.
 *
 * `=` holds when one of the path's {@link fieldValues} equals the value; `!=` when none does.
 * Every error is an {@link InvalidSelector} whose `position` points at the offending character.
 *
 * @example
 * const selector = parseFieldSelector('spec.pool=cpu,actor_id=')
 * selector.matches({ spec: { pool: 'cpu' } }) // true
 */
export function parseFieldSelector(
  input: string | Readonly<Record<string, string>>,
): FieldSelector {
  if (typeof input === 'string') return new ParsedFieldSelector(parseTerms(input))
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const text = String(input as unknown)
    throw new InvalidSelector(
      `a field selector must be a string or an object of path → value, got ${text}`,
      text,
    )
  }
  const terms: string[] = []
  for (const [path, value] of Object.entries(input)) {
    if (typeof value !== 'string') {
      // Not the whole input: a client's object may be too deep or large to encode.
      const text = `${path}: ${Array.isArray(value) ? 'array' : typeof value}`
      throw new InvalidSelector(
        `field selector value for "${path}" must be a string, got ${typeof value}`,
        text,
      )
    }
    terms.push(`${escapePath(path)}=${escapeValue(value)}`)
  }
  // Escaping makes the object form a string selector with the same meaning, so both are checked
  // by one parser and any error points into text the caller can read.
  return new ParsedFieldSelector(parseTerms(terms.join(',')))
}

/** Characters that may follow `\` in a path or value. */
const ESCAPABLE = new Set(['\\', ',', '=', '!'])

class ParsedFieldSelector implements FieldSelector {
  readonly requirements: readonly FieldRequirement[]
  readonly empty: boolean
  readonly #text: string

  constructor(requirements: FieldRequirement[]) {
    const keyed = requirements.map((requirement) => ({ requirement, text: termText(requirement) }))
    keyed.sort(
      (a, b) =>
        compare(a.requirement.path, b.requirement.path) ||
        compare(a.requirement.op, b.requirement.op) ||
        compare(a.requirement.value, b.requirement.value),
    )
    const unique = keyed.filter((entry, i) => i === 0 || entry.text !== keyed[i - 1]!.text)
    this.requirements = Object.freeze(unique.map((entry) => entry.requirement))
    this.empty = unique.length === 0
    this.#text = unique.map((entry) => entry.text).join(',')
  }

  matches(data: unknown): boolean {
    for (const { segments, op, value } of this.requirements) {
      if (fieldHasValue(data, segments, value) !== (op === '=')) return false
    }
    return true
  }

  toString(): string {
    return this.#text
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function termText(requirement: FieldRequirement): string {
  return `${escapePath(requirement.path)}${requirement.op}${escapeValue(requirement.value)}`
}

function escapePath(path: string): string {
  // `!` is escaped too: a path ending in `!` would otherwise read as the `!=` operator.
  return path.replace(/[\\,=!]/g, '\\$&')
}

function escapeValue(value: string): string {
  return value.replace(/[\\,=]/g, '\\$&')
}

/** Scans the whole input once, keeping the input position of every unescaped path character. */
function parseTerms(input: string): FieldRequirement[] {
  const fail = (reason: string, position: number): never => {
    throw selectorError('field selector', input, reason, position)
  }
  const readEscape = (at: number): string => {
    const next = input[at + 1]
    if (next === undefined) return fail(`a trailing '\\' escapes nothing (write '\\\\')`, at)
    if (!ESCAPABLE.has(next)) {
      return fail(`'\\${next}' is not an escape (use '\\\\', '\\,', '\\=' or '\\!')`, at)
    }
    return next
  }
  const requirements: FieldRequirement[] = []
  let i = 0
  while (i <= input.length) {
    let path = ''
    const positions: number[] = []
    let op: FieldOperator | undefined
    let opAt = i
    while (i < input.length) {
      const char = input[i]!
      if (char === ',') break
      if (char === '=' || (char === '!' && input[i + 1] === '=')) {
        op = char === '=' ? '=' : '!='
        opAt = i
        i += op === '!=' || input[i + 1] === '=' ? 2 : 1 // `!=` and `==` are two characters
        break
      }
      if (char === '\\') {
        path += readEscape(i)
        positions.push(i + 1)
        i += 2
      } else {
        path += char
        positions.push(i)
        i += 1
      }
    }
    const lead = path.length - path.trimStart().length
    path = path.trim()
    if (op === undefined) {
      // Nothing but whitespace between two commas: an empty term, skipped as Kubernetes does.
      if (path !== '') fail(`expected '=', '==' or '!=' after ${JSON.stringify(path)}`, i)
      i += 1
      continue
    }
    if (path === '') fail(`empty field path before '${input.slice(opAt, i)}'`, opAt)
    const segments = path.split('.')
    let offset = 0
    for (const segment of segments) {
      if (segment === '') {
        // Point at the dot that should not be there: the next one, or the last one at the end.
        const bad = offset < path.length ? offset : offset - 1
        fail(`empty segment in field path ${JSON.stringify(path)}`, positions[lead + bad]!)
      }
      offset += segment.length + 1
    }
    let value = ''
    while (i < input.length) {
      const char = input[i]!
      if (char === ',') break
      if (char === '=') fail(`unescaped '=' in the value (write '\\=')`, i)
      if (char === '\\') {
        value += readEscape(i)
        i += 2
      } else {
        value += char
        i += 1
      }
    }
    requirements.push(Object.freeze({ path, segments: Object.freeze(segments), op, value }))
    i += 1
  }
  return requirements
}
