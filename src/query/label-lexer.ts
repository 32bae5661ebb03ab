/**
 * The tokens of a label selector, as apimachinery's lexer splits them: identifiers are maximal
 * runs of anything but whitespace and the special characters `= ! ( ) , > <`, and operators are
 * the longest of `!=`, `==` or a single special character. `in` and `notin` stay identifiers
 * here; only the parser knows whether one is an operator or a key or value.
 */
export type LabelTokenKind = 'ident' | '!' | '=' | '==' | '!=' | '>' | '<' | '(' | ')' | ',' | 'end'

/** One token and where it starts in the input (`end` starts at the input's length). */
export interface LabelToken {
  readonly kind: LabelTokenKind
  readonly text: string
  readonly start: number
}

const WHITESPACE = new Set([' ', '\t', '\r', '\n'])
const SPECIAL = new Set(['=', '!', '(', ')', ',', '>', '<'])

/**
 * Splits a label selector into tokens, always ending with an `end` token. Lexing cannot fail:
 * every character is whitespace, special or part of an identifier, and identifiers are checked
 * (as keys or values) by the parser, which knows which one it expects.
 *
 * @example
 * tokenizeLabelSelector('env in (a)').map((t) => t.kind) // ['ident', 'ident', '(', 'ident', ')', 'end']
 */
export function tokenizeLabelSelector(input: string): LabelToken[] {
  const tokens: LabelToken[] = []
  let i = 0
  while (i < input.length) {
    const char = input[i]!
    if (WHITESPACE.has(char)) {
      i += 1
      continue
    }
    if (SPECIAL.has(char)) {
      const pair = input.slice(i, i + 2)
      const kind = pair === '!=' || pair === '==' ? pair : (char as LabelTokenKind)
      tokens.push({ kind, text: kind, start: i })
      i += kind.length
      continue
    }
    const start = i
    while (i < input.length && !WHITESPACE.has(input[i]!) && !SPECIAL.has(input[i]!)) i += 1
    tokens.push({ kind: 'ident', text: input.slice(start, i), start })
  }
  tokens.push({ kind: 'end', text: '', start: input.length })
  return tokens
}
