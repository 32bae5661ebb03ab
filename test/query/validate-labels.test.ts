import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { validateLabelKey, validateLabels, validateLabelValue } from '../../src/query/index.js'

describe('validateLabelKey', () => {
  const valid = [
    'a',
    'A',
    '9',
    'a.b-c_d',
    'MyName',
    'my.name',
    '123-abc',
    'example.com/MyName',
    'app.kubernetes.io/name',
    '0.1.2.domain/99',
    'a'.repeat(63),
    `${'a'.repeat(253)}/x`,
    `${'a'.repeat(63)}.${'b'.repeat(63)}/x`,
  ]
  for (const key of valid) {
    it(`accepts ${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}`, () => {
      assert.equal(validateLabelKey(key), undefined)
    })
  }

  // [key, a fragment of the expected message]
  const invalid: [string, RegExp][] = [
    ['', /must not be empty/],
    ['a'.repeat(64), /at most 63 characters/],
    ['-a', /must start with a letter or digit/],
    ['a-', /must end with a letter or digit/],
    ['_a', /must start/],
    ['a b', /' ' is not allowed in a label name/],
    ['a:b', /':' is not allowed/],
    ['😀', /'😀' is not allowed/],
    ['/a', /prefix before '\/' must not be empty/],
    ['a/', /name after '\/' must not be empty/],
    ['a/b/c', /at most one '\/'/],
    ['Example.com/a', /'E' is not allowed in a label key prefix/],
    ['a..b/c', /dot-separated part/],
    ['-a/c', /dot-separated part/],
    ['a-/c', /dot-separated part/],
    [`${'a'.repeat(254)}/x`, /at most 253 characters/],
    ['example.com/-x', /must start with a letter or digit/],
  ]
  for (const [key, message] of invalid) {
    it(`rejects ${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}`, () => {
      assert.match(validateLabelKey(key) ?? 'valid', message)
    })
  }
})

describe('validateLabelValue', () => {
  for (const value of ['', 'a', 'A-b_c.9', '12345', 'a'.repeat(63)]) {
    it(`accepts ${JSON.stringify(value)}`, () => assert.equal(validateLabelValue(value), undefined))
  }
  const invalid: [string, RegExp][] = [
    ['a'.repeat(64), /at most 63 characters/],
    ['a b', /' ' is not allowed in a label value/],
    ['-a', /label value must start/],
    ['a_', /label value must end/],
    ['a/b', /'\/' is not allowed/],
    ['a,b', /',' is not allowed/],
  ]
  for (const [value, message] of invalid) {
    it(`rejects ${JSON.stringify(value)}`, () => {
      assert.match(validateLabelValue(value) ?? 'valid', message)
    })
  }
})

describe('validateLabels', () => {
  it('accepts plain objects of valid keys and values', () => {
    assert.equal(validateLabels({}), undefined)
    assert.equal(validateLabels({ tier: 'web', 'example.com/app': 'api', empty: '' }), undefined)
    assert.equal(
      validateLabels(Object.assign(Object.create(null) as object, { a: 'b' })),
      undefined,
    )
  })

  const invalid: [string, unknown, RegExp][] = [
    ['null', null, /plain object.*got null/],
    ['an array', ['a'], /got an array/],
    ['a string', 'a=b', /got string/],
    ['a Map', new Map([['a', 'b']]), /instance of a class/],
    ['a class instance', new (class Labels {})(), /instance of a class/],
    ['a symbol key', { [Symbol('s')]: 'x' }, /symbols/],
    ['a bad key', { 'bad key': 'x' }, /key "bad key": ' ' is not allowed/],
    ['a number value', { count: 3 }, /value of "count" must be a string, got number/],
    ['a null value', { count: null }, /value of "count" must be a string, got null/],
    ['a bad value', { tier: 'web tier' }, /value of "tier" \("web tier"\): ' ' is not allowed/],
    ['a long value', { tier: 'a'.repeat(64) }, /at most 63/],
  ]
  for (const [name, labels, message] of invalid) {
    it(`rejects ${name}`, () => assert.match(validateLabels(labels) ?? 'valid', message))
  }
})
