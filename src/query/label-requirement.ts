/**
 * `=` (also written `==`), `!=`, `in`, `notin`, `exists` (`key`), `!exists` (`!key`), `gt` (`>`)
 * and `lt` (`<`).
 */
export type LabelOperator = '=' | '!=' | 'in' | 'notin' | 'exists' | '!exists' | 'gt' | 'lt'

/** One requirement of a label selector. */
export interface LabelRequirement {
  readonly key: string
  readonly op: LabelOperator
  /**
   * One value for `=`, `!=`, `gt` and `lt` (the integer as written); the sorted, distinct set for
   * `in` and `notin`; none for `exists` and `!exists`.
   */
  readonly values: readonly string[]
}

/** A requirement turned into a test that does no parsing or allocation per call. */
export type LabelTest = (labels: Readonly<Record<string, string>>) => boolean

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const DECIMAL = /^[+-]?[0-9]+$/

/**
 * Parses a decimal integer the way Go's `strconv.ParseInt(s, 10, 64)` does (an optional sign,
 * digits, within 64 bits), which is what Kubernetes compares label values with for `>` and `<`.
 * Returns `undefined` for anything else.
 */
export function parseInt64(text: string): bigint | undefined {
  if (!DECIMAL.test(text)) return undefined
  const value = BigInt(text)
  return value < INT64_MIN || value > INT64_MAX ? undefined : value
}

/**
 * Compiles a requirement into a test with Kubernetes semantics: `!=` and `notin` also match
 * when the key is absent; `gt` / `lt` need the key, with a value that parses as an integer.
 * Keys are looked up as own properties so that `constructor` is not found on every object.
 */
export function compileLabelRequirement(requirement: LabelRequirement): LabelTest {
  const { key, op, values } = requirement
  const lookup = (labels: Readonly<Record<string, string>>): string | undefined =>
    Object.hasOwn(labels, key) ? labels[key] : undefined
  switch (op) {
    case '=': {
      const wanted = values[0]
      return (labels) => lookup(labels) === wanted
    }
    case '!=': {
      const unwanted = values[0]
      return (labels) => lookup(labels) !== unwanted
    }
    case 'in': {
      const set = new Set(values)
      return (labels) => {
        const value = lookup(labels)
        return value !== undefined && set.has(value)
      }
    }
    case 'notin': {
      const set = new Set(values)
      return (labels) => {
        const value = lookup(labels)
        return value === undefined || !set.has(value)
      }
    }
    case 'exists':
      return (labels) => Object.hasOwn(labels, key)
    case '!exists':
      return (labels) => !Object.hasOwn(labels, key)
    case 'gt':
    case 'lt': {
      const bound = parseInt64(values[0] ?? '')
      // The parser never lets a non-integer bound through; a hand-built one matches nothing.
      if (bound === undefined) return () => false
      return (labels) => {
        const value = lookup(labels)
        const number = value === undefined ? undefined : parseInt64(value)
        if (number === undefined) return false
        return op === 'gt' ? number > bound : number < bound
      }
    }
    default:
      return op satisfies never
  }
}

/** The canonical text of one requirement, in the form Kubernetes prints. */
export function labelRequirementText(requirement: LabelRequirement): string {
  const { key, op, values } = requirement
  switch (op) {
    case '=':
    case '!=':
      return `${key}${op}${values[0] ?? ''}`
    case 'gt':
      return `${key}>${values[0] ?? ''}`
    case 'lt':
      return `${key}<${values[0] ?? ''}`
    case 'in':
    case 'notin':
      // `()` does not parse, so a set holding only the empty value is written `(,)`.
      return `${key} ${op} (${values.length === 1 && values[0] === '' ? ',' : values.join(',')})`
    case 'exists':
      return key
    case '!exists':
      return `!${key}`
    default:
      return op satisfies never
  }
}
