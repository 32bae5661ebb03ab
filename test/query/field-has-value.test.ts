import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { fieldHasValue, fieldValues } from '../../src/query/index.js'

const seed = process.env['FC_SEED'] === undefined ? undefined : Number(process.env['FC_SEED'])

describe('fieldHasValue', () => {
  it('answers exactly as fieldValues(...).includes(value)', () => {
    const scalar = fc.oneof(
      fc.constantFrom('', 'a', 'b', '1', 'true'),
      fc.integer({ min: 0, max: 2 }),
      fc.boolean(),
      fc.constant(null),
    )
    const leaf = fc.oneof(
      scalar,
      fc.array(fc.oneof(scalar, fc.constant({})), { maxLength: 3 }),
      fc.constant({}),
    )
    const data = fc.oneof(
      leaf,
      fc.record({ a: leaf }, { requiredKeys: [] }),
      fc.record({ a: fc.record({ b: leaf }, { requiredKeys: [] }) }, { requiredKeys: [] }),
    )
    const path = fc.constantFrom(['a'], ['a', 'b'], ['b'])
    const value = fc.constantFrom('', 'a', 'b', '1', '2', 'true', 'false')
    fc.assert(
      fc.property(data, path, value, (d, segments, v) => {
        assert.equal(fieldHasValue(d, segments, v), fieldValues(d, segments).includes(v))
      }),
      { numRuns: 2000, ...(seed === undefined ? {} : { seed }) },
    )
  })
})
