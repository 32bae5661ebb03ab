/** Shared so that every missing value is the same frozen array and costs no allocation. */
const MISSING: readonly string[] = Object.freeze([''])
const NOTHING: readonly string[] = Object.freeze([])

/**
 * The string forms a data path has in `data`: what a field index stores for a record and what a
 * field selector's `=` / `!=` compare against. The rules, which follow Kubernetes' field
 * selectors where they have one:
 *
 * - The path is walked through plain objects only, by own properties; a step into anything else
 *   (a string, a number, an array) finds nothing.
 * - Missing, `null` and `undefined` → `['']`, so `actor_id=` selects "not set".
 * - A string → `[s]`; a number, boolean or bigint → `[String(v)]` (`3`, `true`).
 * - An array → the forms of its elements by the same scalar rules (a `null` element is `''`;
 *   object and array elements contribute nothing), without duplicates; an EMPTY array → `['']`,
 *   so `cached_snapshots=` selects "none cached".
 * - A plain object → `[]`: it never equals any value (so `=` never matches it, `!=` always does).
 *
 * @example
 * fieldValues({ spec: { pool: 'cpu' } }, ['spec', 'pool']) // ['cpu']
 * fieldValues({ tags: ['a', 'b'] }, ['tags']) // ['a', 'b']
 * fieldValues({}, ['actor_id']) // ['']
 */
export function fieldValues(data: unknown, segments: readonly string[]): readonly string[] {
  let current = data
  for (const segment of segments) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return MISSING
    // Own properties only: `constructor` or `__proto__` must not reach into the prototype chain.
    if (!Object.hasOwn(current, segment)) return MISSING
    current = (current as Record<string, unknown>)[segment]
  }
  if (Array.isArray(current)) return arrayValues(current)
  const form = scalarForm(current)
  if (form === undefined) return NOTHING
  return form === '' ? MISSING : [form]
}

/**
 * Whether one of the path's {@link fieldValues} equals `value` — the same answer, computed
 * without building the array (selectors test this once per candidate record).
 */
export function fieldHasValue(data: unknown, segments: readonly string[], value: string): boolean {
  let current = data
  for (const segment of segments) {
    if (typeof current !== 'object' || current === null || Array.isArray(current))
      return value === ''
    if (!Object.hasOwn(current, segment)) return value === ''
    current = (current as Record<string, unknown>)[segment]
  }
  if (Array.isArray(current)) {
    if (current.length === 0) return value === ''
    for (const element of current) if (scalarForm(element) === value) return true
    return false
  }
  return scalarForm(current) === value
}

function arrayValues(array: readonly unknown[]): readonly string[] {
  if (array.length === 0) return MISSING
  if (array.length === 1) {
    const form = scalarForm(array[0])
    return form === undefined ? NOTHING : [form]
  }
  const forms = new Set<string>()
  for (const element of array) {
    const form = scalarForm(element)
    if (form !== undefined) forms.add(form)
  }
  return [...forms]
}

/** The string form of a scalar, `''` for nothing, or `undefined` for an object or array. */
function scalarForm(value: unknown): string | undefined {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value)
  }
  return undefined
}
