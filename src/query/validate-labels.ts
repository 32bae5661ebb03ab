/**
 * Label syntax, as Kubernetes defines it (apimachinery `IsLabelKey`, `IsLabelValue`,
 * `IsDNS1123Subdomain`). Each check reports the offset of the first offending character too, so
 * the selector parser can put a caret under it.
 */

/** What is wrong with a label key or value, and where (an offset into it). */
export interface LabelProblem {
  readonly message: string
  readonly offset: number
}

/** Longest label name and value (a DNS label). */
const MAX_NAME = 63
/** Longest key prefix (a DNS subdomain). */
const MAX_PREFIX = 253
const NAME_CHAR = /[A-Za-z0-9._-]/
const ALNUM = /[A-Za-z0-9]/
const PREFIX_CHAR = /[a-z0-9.-]/

/**
 * Checks a label key: an optional DNS-subdomain prefix (lowercase letters, digits, `-` and `.`,
 * at most 253 characters) and `/`, then a name of at most 63 letters, digits, `-`, `_` and `.`
 * that starts and ends with a letter or digit. Returns the problem, or `undefined` when valid.
 *
 * @example
 * validateLabelKey('app.kubernetes.io/name') // undefined
 * validateLabelKey('-x') // "a label name must start with a letter or digit"
 */
export function validateLabelKey(key: string): string | undefined {
  return labelKeyProblem(key)?.message
}

/**
 * Checks a label value: empty, or at most 63 letters, digits, `-`, `_` and `.` that start and
 * end with a letter or digit. Returns the problem, or `undefined` when valid.
 */
export function validateLabelValue(value: string): string | undefined {
  return labelValueProblem(value)?.message
}

/**
 * Checks a record's labels: a plain object (or one with a `null` prototype) whose own keys are
 * valid label keys and whose values are valid label value strings. Returns the first problem,
 * naming the key, or `undefined` when valid.
 */
export function validateLabels(labels: unknown): string | undefined {
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    return `must be a plain object of key → string value, got ${describe(labels)}`
  }
  const prototype: unknown = Object.getPrototypeOf(labels)
  if (prototype !== Object.prototype && prototype !== null) {
    return 'must be a plain object of key → string value, got an instance of a class'
  }
  if (Object.getOwnPropertySymbols(labels).length > 0) return 'keys must be strings, not symbols'
  for (const [key, value] of Object.entries(labels)) {
    const keyProblem = labelKeyProblem(key)
    if (keyProblem !== undefined) return `key ${JSON.stringify(key)}: ${keyProblem.message}`
    if (typeof value !== 'string') {
      return `the value of ${JSON.stringify(key)} must be a string, got ${describe(value)}`
    }
    const valueProblem = labelValueProblem(value)
    if (valueProblem !== undefined) {
      return `the value of ${JSON.stringify(key)} (${JSON.stringify(value)}): ${valueProblem.message}`
    }
  }
  return undefined
}

/** {@link validateLabelKey} with the offset of the offending character. */
export function labelKeyProblem(key: string): LabelProblem | undefined {
  if (key === '') return { message: 'a label key must not be empty', offset: 0 }
  const slash = key.indexOf('/')
  if (slash < 0) return nameProblem(key, 'name')
  const extra = key.indexOf('/', slash + 1)
  if (extra >= 0) return { message: "a label key has at most one '/' (prefix/name)", offset: extra }
  if (slash === 0) return { message: "the prefix before '/' must not be empty", offset: 0 }
  const problem = prefixProblem(key.slice(0, slash))
  if (problem !== undefined) return problem
  if (slash === key.length - 1) {
    return { message: "the name after '/' must not be empty", offset: key.length }
  }
  const name = nameProblem(key.slice(slash + 1), 'name')
  return name === undefined ? undefined : { message: name.message, offset: slash + 1 + name.offset }
}

/** {@link validateLabelValue} with the offset of the offending character. */
export function labelValueProblem(value: string): LabelProblem | undefined {
  return value === '' ? undefined : nameProblem(value, 'value')
}

/** A label name or non-empty value: the same syntax, named differently in messages. */
function nameProblem(text: string, what: 'name' | 'value'): LabelProblem | undefined {
  for (let i = 0; i < text.length; i++) {
    if (!NAME_CHAR.test(text[i]!)) {
      return {
        message: `${quoteChar(text, i)} is not allowed in a label ${what} (use letters, digits, '-', '_' and '.')`,
        offset: i,
      }
    }
  }
  if (!ALNUM.test(text[0]!)) {
    return { message: `a label ${what} must start with a letter or digit`, offset: 0 }
  }
  if (!ALNUM.test(text[text.length - 1]!)) {
    return { message: `a label ${what} must end with a letter or digit`, offset: text.length - 1 }
  }
  if (text.length > MAX_NAME) {
    return {
      message: `a label ${what} must be at most ${MAX_NAME} characters long`,
      offset: MAX_NAME,
    }
  }
  return undefined
}

/** A DNS subdomain: dot-separated parts of lowercase letters, digits and `-`, each alnum-bounded. */
function prefixProblem(prefix: string): LabelProblem | undefined {
  const edge =
    'each dot-separated part of a label key prefix must start and end with a letter or digit'
  for (let i = 0; i < prefix.length; i++) {
    const char = prefix[i]!
    if (!PREFIX_CHAR.test(char)) {
      return {
        message: `${quoteChar(prefix, i)} is not allowed in a label key prefix (use lowercase letters, digits, '-' and '.')`,
        offset: i,
      }
    }
    const previous = prefix[i - 1]
    if ((char === '.' || char === '-') && (previous === undefined || previous === '.')) {
      return { message: edge, offset: i }
    }
    if (char === '.' && previous === '-') return { message: edge, offset: i - 1 }
  }
  const last = prefix[prefix.length - 1]
  if (last === '.' || last === '-') return { message: edge, offset: prefix.length - 1 }
  if (prefix.length > MAX_PREFIX) {
    return {
      message: `a label key prefix must be at most ${MAX_PREFIX} characters long`,
      offset: MAX_PREFIX,
    }
  }
  return undefined
}

/** The (whole, even if astral) character at `index`, quoted for a message. */
function quoteChar(text: string, index: number): string {
  return JSON.stringify(String.fromCodePoint(text.codePointAt(index)!)).replace(/^"|"$/g, "'")
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}
