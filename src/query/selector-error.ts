import { InvalidSelector } from '../errors/index.js'

/** What is being parsed, as it should read in an error message. */
export type SelectorSyntax = 'glob' | 'field selector' | 'label selector'

/**
 * Builds the {@link InvalidSelector} every parser in this folder throws: the message quotes the
 * input, names the problem and repeats the input with a caret under the offending character, so
 * a person reading a log line sees where to look without counting characters.
 *
 * @example
 * throw selectorError('field selector', 'pool=cpu,bad', `expected '=' after "bad"`, 12)
 * // invalid field selector "pool=cpu,bad": expected '=' after "bad" at position 12
 * //   pool=cpu,bad
 * //               ^
 */
export function selectorError(
  syntax: SelectorSyntax,
  input: string,
  reason: string,
  position: number,
): InvalidSelector {
  // Tabs and line breaks would push the caret off its column; a space has the same width as
  // every other ASCII character, so swapping them keeps the caret under the right character.
  const echo = input.replace(/[\t\n\r\v\f]/g, ' ')
  const message =
    `invalid ${syntax} ${JSON.stringify(input)}: ${reason} at position ${position}\n` +
    `  ${echo}\n` +
    `  ${' '.repeat(position)}^`
  return new InvalidSelector(message, input, position)
}
