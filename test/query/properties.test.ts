import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidSelector } from '../../src/errors/index.js'
import {
  compileGlob,
  isGlob,
  parseFieldSelector,
  parseLabelSelector,
} from '../../src/query/index.js'
import type { FieldSelector, LabelSelector } from '../../src/query/index.js'
import { fcParams } from './helpers.js'

// Set FC_SEED to replay a failure; fast-check prints the seed and path when a property fails.

type GlobToken = { kind: 'literal'; char: string } | { kind: 'one' } | { kind: 'star' }

/** The reference reading of a glob, or `undefined` when it ends in a lone backslash. */
function globTokens(pattern: string): GlobToken[] | undefined {
  const tokens: GlobToken[] = []
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!
    if (char === '\\') {
      if (i + 1 === pattern.length) return undefined
      tokens.push({ kind: 'literal', char: pattern[++i]! })
    } else if (char === '*') tokens.push({ kind: 'star' })
    else if (char === '?') tokens.push({ kind: 'one' })
    else tokens.push({ kind: 'literal', char })
  }
  return tokens
}

/** The obvious recursive matcher (memoised only so that many stars stay quick). */
function referenceMatch(tokens: GlobToken[], text: string): boolean {
  const memo = new Map<string, boolean>()
  const match = (t: number, s: number): boolean => {
    const key = `${t},${s}`
    const known = memo.get(key)
    if (known !== undefined) return known
    let result: boolean
    const token = tokens[t]
    if (token === undefined) result = s === text.length
    else if (token.kind === 'star') result = match(t + 1, s) || (s < text.length && match(t, s + 1))
    else if (s === text.length) result = false
    else result = (token.kind === 'one' || token.char === text[s]) && match(t + 1, s + 1)
    memo.set(key, result)
    return result
  }
  return match(0, 0)
}

function checkGlob(pattern: string, texts: string[]): void {
  const tokens = globTokens(pattern)
  if (tokens === undefined) {
    assert.throws(
      () => compileGlob(pattern),
      (err: unknown) => err instanceof InvalidSelector && err.position === pattern.length - 1,
    )
    return
  }
  const glob = compileGlob(pattern)
  const firstWildcard = tokens.findIndex((token) => token.kind !== 'literal')
  const literals = firstWildcard < 0 ? tokens : tokens.slice(0, firstWildcard)
  assert.equal(
    glob.prefix,
    literals.map((token) => (token.kind === 'literal' ? token.char : '')).join(''),
  )
  assert.equal(glob.exact, firstWildcard < 0)
  assert.equal(isGlob(pattern), firstWildcard >= 0)
  for (const text of texts) {
    const expected = referenceMatch(tokens, text)
    assert.equal(glob.test(text), expected, `${JSON.stringify(pattern)} on ${JSON.stringify(text)}`)
    if (expected) assert.ok(text.startsWith(glob.prefix))
    if (glob.exact) assert.equal(expected, text === glob.prefix)
  }
}

describe('glob properties', () => {
  const small = (chars: string[], maxLength: number) =>
    fc.string({ unit: fc.constantFrom(...chars), maxLength })

  it('agrees with a reference matcher on a small alphabet', () => {
    fc.assert(
      fc.property(
        small(['a', 'b', '*', '?', '\\'], 10),
        fc.array(small(['a', 'b', '*', '?', '\\'], 12), { maxLength: 8 }),
        (pattern, texts) => checkGlob(pattern, texts),
      ),
      fcParams(1000),
    )
  })

  it('agrees with a reference matcher on arbitrary strings', () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 })
    fc.assert(
      fc.property(text, fc.array(text, { maxLength: 5 }), (pattern, texts) =>
        checkGlob(pattern, [...texts, pattern]),
      ),
      fcParams(),
    )
  })
})

/** Escaping written independently of the implementation, from the grammar. */
const escapePath = (path: string) => path.replace(/[\\,=!]/g, (char) => `\\${char}`)
const escapeValue = (value: string) => value.replace(/[\\,=]/g, (char) => `\\${char}`)

/** toString parses back to the same requirements, and printing those gives the same text. */
function assertFieldRoundTrip(selector: FieldSelector): void {
  const text = selector.toString()
  const again = parseFieldSelector(text)
  assert.equal(again.toString(), text)
  assert.deepEqual(again.requirements, selector.requirements)
}

function assertLabelRoundTrip(selector: LabelSelector): void {
  const text = selector.toString()
  const again = parseLabelSelector(text)
  assert.equal(again.toString(), text)
  assert.deepEqual(again.requirements, selector.requirements)
}

describe('field selector properties', () => {
  const unit = fc.constantFrom('a', 'b', 'é', '😀', ' ', '\\', ',', '=', '!', '(', '.')
  const segment = fc.string({
    unit: fc.constantFrom('a', 'b', 'é', '😀', ' ', '\\', ',', '=', '!', '('),
    minLength: 1,
    maxLength: 4,
  })
  const path = fc
    .array(segment, { minLength: 1, maxLength: 3 })
    .map((segments) => segments.join('.'))
    .filter((p) => p.trim() === p)
  const term = fc.record({
    path,
    op: fc.constantFrom('=', '==', '!='),
    value: fc.string({ unit, maxLength: 5 }),
    pad: fc.constantFrom('', ' ', '\t '),
  })

  it('parses generated selectors to their terms and round-trips through toString', () => {
    fc.assert(
      fc.property(fc.array(term, { maxLength: 5 }), (terms) => {
        const text = terms
          .map((t) => `${t.pad}${escapePath(t.path)}${t.pad}${t.op}${escapeValue(t.value)}`)
          .join(',')
        const selector = parseFieldSelector(text)
        const expected = new Set(
          terms.map((t) => JSON.stringify([t.path, t.op === '!=' ? '!=' : '=', t.value])),
        )
        const actual = selector.requirements.map((r) => JSON.stringify([r.path, r.op, r.value]))
        assert.deepEqual(new Set(actual), expected)
        assert.equal(actual.length, expected.size, 'no duplicates')
        for (const r of selector.requirements) assert.deepEqual(r.segments, r.path.split('.'))
        assertFieldRoundTrip(selector)
      }),
      fcParams(),
    )
  })

  it('either parses and round-trips, or throws InvalidSelector at a position in the input', () => {
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 16 }), (input) => {
        let selector: FieldSelector
        try {
          selector = parseFieldSelector(input)
        } catch (err) {
          assert.ok(err instanceof InvalidSelector, String(err))
          assert.ok(err.position !== undefined && err.position >= 0 && err.position <= input.length)
          return
        }
        assertFieldRoundTrip(selector)
      }),
      fcParams(),
    )
  })
})

describe('label selector properties', () => {
  const key = fc.constantFrom('a', 'b9', 'x.y', 'example.com/app', 'in', 'notin', 'A_b')
  const value = fc.constantFrom('', 'v', 'in', '1', '10', 'a.b', 'Z-9')
  const integer = fc.constantFrom('0', '7', '42', '007', '9223372036854775807')
  const space = fc.constantFrom('', ' ', '\t', ' \n ')
  const requirement = fc.oneof(
    fc
      .tuple(key, fc.constantFrom('=', '==', '!='), value)
      .map(([k, op, v]) => ({ text: `${k}${op}${v}`, key: k })),
    fc
      .tuple(key, fc.constantFrom('>', '<'), integer)
      .map(([k, op, v]) => ({ text: `${k}${op}${v}`, key: k })),
    fc
      .tuple(key, fc.constantFrom('in', 'notin'), fc.array(value, { minLength: 1, maxLength: 4 }))
      .map(([k, op, vs]) => ({
        text: `${k} ${op} (${vs.join(',') || ','})`,
        key: k,
      })),
    key.map((k) => ({ text: k, key: k })),
    key.map((k) => ({ text: `!${k}`, key: k })),
  )

  it('parses generated selectors, sorted by key, and round-trips through toString', () => {
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 5 }), space, (requirements, pad) => {
        const text = requirements.map((r) => `${pad}${r.text}${pad}`).join(',')
        const selector = parseLabelSelector(text)
        const keys = selector.requirements.map((r) => r.key)
        assert.deepEqual(keys, [...keys].sort())
        assert.deepEqual(new Set(keys), new Set(requirements.map((r) => r.key)))
        assertLabelRoundTrip(selector)
      }),
      fcParams(),
    )
  })

  it('either parses and round-trips, or throws InvalidSelector at a position in the input', () => {
    const token = fc.constantFrom(
      'a',
      'b',
      '1',
      '-',
      '.',
      '/',
      '=',
      '!',
      '(',
      ')',
      ',',
      '>',
      '<',
      ' ',
      ' in ',
      ' notin ',
      'é',
    )
    fc.assert(
      fc.property(fc.array(token, { maxLength: 12 }), (tokens) => {
        const input = tokens.join('')
        let selector: LabelSelector
        try {
          selector = parseLabelSelector(input)
        } catch (err) {
          assert.ok(err instanceof InvalidSelector, String(err))
          assert.ok(err.position !== undefined && err.position >= 0 && err.position <= input.length)
          return
        }
        assertLabelRoundTrip(selector)
      }),
      fcParams(2000),
    )
  })
})
