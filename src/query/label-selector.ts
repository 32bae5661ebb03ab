import { InvalidSelector } from '../errors/index.js'
import { compileLabelRequirement, labelRequirementText, parseInt64 } from './label-requirement.js'
import type { LabelRequirement, LabelTest } from './label-requirement.js'
import { tokenizeLabelSelector } from './label-lexer.js'
import type { LabelToken } from './label-lexer.js'
import { selectorError } from './selector-error.js'
import { labelKeyProblem, labelValueProblem } from './validate-labels.js'

/** A parsed label selector: an AND of requirements over a record's labels. */
export interface LabelSelector {
  /** Sorted by key (then by text) and without duplicates, as Kubernetes sorts them. */
  readonly requirements: readonly LabelRequirement[]
  /** True when there are no requirements: the selector matches everything. */
  readonly empty: boolean
  /** True when every requirement holds for `labels`. */
  matches(labels: Readonly<Record<string, string>>): boolean
  /** The canonical text; parsing it gives the same requirements. */
  toString(): string
}

/**
 * Parses a Kubernetes label selector (apimachinery `labels.Parse`):
 * `env in (prod,stage),!canary,tier=web,tier notin (db),count>3,version<10,app,app==x,app!=y`.
 *
 * Requirements are separated by `,` (AND); whitespace between tokens is ignored. `=` and `==`
 * are the same; `key` alone means the key exists and `!key` that it does not; `in (…)` and
 * `notin (…)` take a set of values, where an empty element (`(a,)`, `(,)`) is the empty value
 * as in Kubernetes — but `()` with nothing inside is an error rather than Kubernetes' silent
 * `("")`; `>` and `<` take one non-negative integer. Keys and values follow
 * {@link validateLabelKey} and {@link validateLabelValue}.
 *
 * Matching follows Kubernetes: `!=` and `notin` also match when the key is absent; `>` and `<`
 * need the key, with a value that parses as a 64-bit integer. The object form `{ tier: 'web' }`
 * is an AND of `=`. Every error is an {@link InvalidSelector} whose `position` points at the
 * offending character (the end of the input for an unclosed `(`).
 *
 * @example
 * const selector = parseLabelSelector('env in (prod,stage),!canary')
 * selector.matches({ env: 'prod' }) // true
 */
export function parseLabelSelector(
  input: string | Readonly<Record<string, string>>,
): LabelSelector {
  if (typeof input === 'string') return new ParsedLabelSelector(new LabelParser(input).parse())
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const text = String(input as unknown)
    throw new InvalidSelector(
      `a label selector must be a string or an object of key → value, got ${text}`,
      text,
    )
  }
  // Errors point into the `key=value,…` text the object stands for.
  const entries = Object.entries(input)
  const text = entries.map(([key, value]) => `${key}=${String(value)}`).join(',')
  const requirements: LabelRequirement[] = []
  let offset = 0
  for (const [key, value] of entries) {
    if (typeof value !== 'string') {
      throw new InvalidSelector(
        `label selector value for "${key}" must be a string, got ${typeof value}`,
        text,
      )
    }
    const keyProblem = labelKeyProblem(key)
    if (keyProblem !== undefined) {
      throw selectorError('label selector', text, keyProblem.message, offset + keyProblem.offset)
    }
    const valueProblem = labelValueProblem(value)
    if (valueProblem !== undefined) {
      throw selectorError(
        'label selector',
        text,
        valueProblem.message,
        offset + key.length + 1 + valueProblem.offset,
      )
    }
    requirements.push(requirement(key, '=', [value]))
    offset += key.length + value.length + 2
  }
  return new ParsedLabelSelector(requirements)
}

class ParsedLabelSelector implements LabelSelector {
  readonly requirements: readonly LabelRequirement[]
  readonly empty: boolean
  readonly #text: string
  readonly #tests: readonly LabelTest[]

  constructor(requirements: LabelRequirement[]) {
    const keyed = requirements.map((r) => ({ requirement: r, text: labelRequirementText(r) }))
    keyed.sort((a, b) => compare(a.requirement.key, b.requirement.key) || compare(a.text, b.text))
    const unique = keyed.filter((entry, i) => i === 0 || entry.text !== keyed[i - 1]!.text)
    this.requirements = Object.freeze(unique.map((entry) => entry.requirement))
    this.empty = unique.length === 0
    this.#text = unique.map((entry) => entry.text).join(',')
    this.#tests = this.requirements.map(compileLabelRequirement)
  }

  matches(labels: Readonly<Record<string, string>>): boolean {
    for (const test of this.#tests) if (!test(labels)) return false
    return true
  }

  toString(): string {
    return this.#text
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function requirement(key: string, op: LabelRequirement['op'], values: string[]): LabelRequirement {
  return Object.freeze({ key, op, values: Object.freeze(values) })
}

/** A recursive-descent parser over the tokens, one method per grammar rule. */
class LabelParser {
  readonly #input: string
  readonly #tokens: readonly LabelToken[]
  #at = 0

  constructor(input: string) {
    this.#input = input
    this.#tokens = tokenizeLabelSelector(input)
  }

  parse(): LabelRequirement[] {
    const requirements: LabelRequirement[] = []
    if (this.#peek().kind === 'end') return requirements
    for (;;) {
      requirements.push(this.#requirement())
      const next = this.#next()
      if (next.kind === 'end') return requirements
      if (next.kind !== ',') this.#fail(`expected ',' or the end of the selector`, next)
      const after = this.#peek()
      if (after.kind !== 'ident' && after.kind !== '!') {
        this.#fail(`expected a label key or '!' after ','`, after)
      }
    }
  }

  #requirement(): LabelRequirement {
    let token = this.#next()
    const negated = token.kind === '!'
    if (negated) token = this.#next()
    if (token.kind !== 'ident') {
      this.#fail(negated ? `expected a label key after '!'` : "expected a label key or '!'", token)
    }
    const key = token.text
    const problem = labelKeyProblem(key)
    if (problem !== undefined) this.#fail(problem.message, token, problem.offset)
    const follow = this.#peek()
    if (follow.kind === ',' || follow.kind === 'end') {
      return requirement(key, negated ? '!exists' : 'exists', [])
    }
    if (negated) this.#fail(`'!${key}' (does not exist) takes no operator or value`, follow)
    const op = this.#next()
    switch (op.kind) {
      case '=':
      case '==':
        return requirement(key, '=', [this.#exactValue(op)])
      case '!=':
        return requirement(key, '!=', [this.#exactValue(op)])
      case '>':
      case '<':
        return requirement(key, op.kind === '>' ? 'gt' : 'lt', [this.#integerValue(op)])
      case 'ident':
        if (op.text === 'in' || op.text === 'notin') {
          return requirement(key, op.text, this.#valueSet(op))
        }
        break
      case '!':
      case '(':
      case ')':
      case ',':
      case 'end':
        break
      default:
        op.kind satisfies never
    }
    return this.#fail(
      `expected an operator (=, ==, !=, in, notin, >, <) after ${JSON.stringify(key)}`,
      op,
    )
  }

  /** The value after `=`, `==` or `!=`: nothing before `,` or the end is the empty value. */
  #exactValue(op: LabelToken): string {
    const token = this.#peek()
    if (token.kind === ',' || token.kind === 'end') return ''
    this.#at += 1
    if (token.kind !== 'ident') this.#fail(`expected a label value after '${op.text}'`, token)
    const problem = labelValueProblem(token.text)
    if (problem !== undefined) this.#fail(problem.message, token, problem.offset)
    return token.text
  }

  /** The value after `>` or `<`: digits (a label value cannot hold a sign) within 64 bits. */
  #integerValue(op: LabelToken): string {
    const token = this.#peek()
    const reason = `'${op.text}' needs a non-negative integer value`
    if (token.kind !== 'ident') this.#fail(reason, token)
    this.#at += 1
    const bad = token.text.search(/[^0-9]/)
    if (bad >= 0) this.#fail(`${reason}, got ${JSON.stringify(token.text)}`, token, bad)
    if (parseInt64(token.text) === undefined) this.#fail(`${reason} that fits in 64 bits`, token)
    return token.text
  }

  /** `( value, … )` after `in` / `notin`; empty elements are the empty value, as in Kubernetes. */
  #valueSet(op: LabelToken): string[] {
    const open = this.#next()
    if (open.kind !== '(') this.#fail(`expected '(' after '${op.text}'`, open)
    const values = new Set<string>()
    let expectValue = true
    for (;;) {
      const token = this.#next()
      switch (token.kind) {
        case ')':
          if (values.size === 0 && expectValue) {
            this.#fail(`'${op.text} ()' has no values (write '(,)' for the empty value)`, token)
          }
          if (expectValue) values.add('')
          return [...values].sort(compare)
        case ',':
          if (expectValue) values.add('')
          expectValue = true
          break
        case 'ident': {
          if (!expectValue) this.#fail(`expected ',' or ')'`, token)
          const problem = labelValueProblem(token.text)
          if (problem !== undefined) this.#fail(problem.message, token, problem.offset)
          values.add(token.text)
          expectValue = false
          break
        }
        case 'end':
          return this.#fail(`unclosed '('`, token)
        case '!':
        case '=':
        case '==':
        case '!=':
        case '>':
        case '<':
        case '(':
          return this.#fail(
            expectValue ? `expected a label value, ',' or ')'` : `expected ',' or ')'`,
            token,
          )
        default:
          return token.kind satisfies never
      }
    }
  }

  #peek(): LabelToken {
    return this.#tokens[this.#at]!
  }

  #next(): LabelToken {
    const token = this.#tokens[this.#at]!
    // `end` is never consumed, so every later peek still sees it.
    if (token.kind !== 'end') this.#at += 1
    return token
  }

  #fail(reason: string, token: LabelToken, offset = 0): never {
    throw selectorError('label selector', this.#input, reason, token.start + offset)
  }
}
