import { selectorError } from './selector-error.js'

/**
 * A glob compiled once. `test` never re-parses the pattern, and `prefix` / `exact` let an index
 * serve the glob (an exact id lookup, or a range scan over ids starting with `prefix`) before
 * `test` is asked about the candidates.
 */
export interface CompiledGlob {
  /** The pattern as given. */
  readonly source: string
  /** The literal characters before the first unescaped wildcard; `''` when it starts with one. */
  readonly prefix: string
  /** True when the pattern has no wildcard: then `test(id)` is `id === prefix`. */
  readonly exact: boolean
  /** True when `id` matches the whole pattern. */
  test(id: string): boolean
}

/**
 * One run of pattern characters between two stars. `text` holds the literal UTF-16 code units
 * (with a placeholder where the pattern has `?`); `any[i]` marks those `?` positions, and is
 * `undefined` when there are none so that `indexOf` can find the run.
 */
interface Segment {
  readonly text: string
  readonly any: readonly boolean[] | undefined
}

/**
 * Compiles a glob over ids. `*` matches any run of characters (including none); `?` matches
 * exactly one UTF-16 code unit (so a character outside the Basic Multilingual Plane takes two);
 * `\` makes the next character literal (`\*`, `\?`, `\\`; any other escaped character stands for
 * itself). A trailing lone `\` is {@link InvalidSelector} pointing at it.
 *
 * Matching never backtracks: the parts between stars are found left to right, each at its
 * leftmost position, which is enough for globs because a star absorbs whatever a later part
 * would have skipped. The cost is at worst (pattern length × id length), never exponential.
 *
 * @example
 * const glob = compileGlob('worker-*')
 * glob.prefix // 'worker-'
 * glob.test('worker-7') // true
 */
export function compileGlob(pattern: string): CompiledGlob {
  // Split the pattern into star-separated segments of (literal | '?') code units.
  const segments: { text: string; any: boolean[] }[] = [{ text: '', any: [] }]
  let prefix = ''
  let seenWildcard = false
  for (let i = 0; i < pattern.length; i++) {
    let char = pattern[i]!
    let wildcard = char === '*' || char === '?'
    if (char === '\\') {
      if (i + 1 === pattern.length) {
        throw selectorError('glob', pattern, `a trailing '\\' escapes nothing (write '\\\\')`, i)
      }
      char = pattern[++i]!
      wildcard = false
    }
    if (wildcard) seenWildcard = true
    else if (!seenWildcard) prefix += char
    if (wildcard && char === '*') {
      segments.push({ text: '', any: [] })
      continue
    }
    const current = segments[segments.length - 1]!
    current.text += char
    current.any.push(wildcard)
  }

  if (!seenWildcard) {
    return { source: pattern, prefix, exact: true, test: (id) => id === prefix }
  }
  const compiled = segments.map(toSegment)
  // The prefix is checked with startsWith, so the first segment need only cover what follows it.
  const head = dropFront(compiled[0]!, prefix.length)
  if (compiled.length === 1) {
    const length = prefix.length + head.text.length
    return {
      source: pattern,
      prefix,
      exact: false,
      test: (id) =>
        id.length === length && id.startsWith(prefix) && matchAt(head, id, prefix.length),
    }
  }
  const tail = compiled[compiled.length - 1]!
  const middles = compiled.slice(1, -1).filter((segment) => segment.text.length > 0)
  const minLength = prefix.length + head.text.length + tail.text.length
  if (head.text.length === 0 && tail.text.length === 0 && middles.length === 0) {
    // Only stars after the prefix (`*`, `worker-*`, `a**`): the prefix decides alone.
    return { source: pattern, prefix, exact: false, test: (id) => id.startsWith(prefix) }
  }
  return {
    source: pattern,
    prefix,
    exact: false,
    test(id) {
      if (id.length < minLength || !id.startsWith(prefix)) return false
      let from = prefix.length
      const end = id.length - tail.text.length
      if (!matchAt(head, id, from) || !matchAt(tail, id, end)) return false
      from += head.text.length
      for (const segment of middles) {
        const at = find(segment, id, from, end)
        if (at < 0) return false
        from = at + segment.text.length
      }
      return true
    },
  }
}

/** True when `pattern` has an unescaped `*` or `?`. Never throws: a trailing `\` is ignored here. */
export function isGlob(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]
    if (char === '\\') i++
    else if (char === '*' || char === '?') return true
  }
  return false
}

function toSegment(raw: { text: string; any: boolean[] }): Segment {
  return { text: raw.text, any: raw.any.includes(true) ? raw.any : undefined }
}

function dropFront(segment: Segment, count: number): Segment {
  return toSegment({ text: segment.text.slice(count), any: segment.any?.slice(count) ?? [] })
}

/** True when `segment` matches `id` starting at `at` (the caller has checked that it fits). */
function matchAt(segment: Segment, id: string, at: number): boolean {
  const { text, any } = segment
  if (any === undefined) return id.startsWith(text, at)
  for (let i = 0; i < text.length; i++) {
    if (!any[i] && id.charCodeAt(at + i) !== text.charCodeAt(i)) return false
  }
  return true
}

/** The leftmost start ≥ `from` at which `segment` matches and ends by `end`, or -1. */
function find(segment: Segment, id: string, from: number, end: number): number {
  const last = end - segment.text.length
  if (segment.any === undefined) {
    const at = id.indexOf(segment.text, from)
    return at >= 0 && at <= last ? at : -1
  }
  for (let at = from; at <= last; at++) if (matchAt(segment, id, at)) return at
  return -1
}

/** Escapes `*`, `?` and `\` so that `text` matches itself literally as a glob. */
export function escapeGlob(text: string): string {
  return text.replace(/[\\*?]/g, (char) => `\\${char}`)
}

/**
 * The least string greater than every string that starts with `prefix`, in code point order
 * (UTF-8 byte order: PostgreSQL's `C` collation, SQLite's BINARY); `undefined` when there is
 * none. With it a backend serves a literal-prefix glob as a range on its primary key.
 */
export function nextPrefix(prefix: string): string | undefined {
  const points = Array.from(prefix, (char) => char.codePointAt(0)!)
  while (points.length > 0 && points[points.length - 1] === 0x10ffff) points.pop()
  const last = points.pop()
  if (last === undefined) return undefined
  // Surrogates are not characters: after U+D7FF comes U+E000.
  points.push(last === 0xd7ff ? 0xe000 : last + 1)
  return String.fromCodePoint(...points)
}
