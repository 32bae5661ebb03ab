// The operation table's own rules: a pid argument is always an own-pid argument, the
// arguments are checked once for every transport, and the transaction shape has one message.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  OPERATION_NAMES,
  OPERATIONS,
  ownPidsOf,
  parseArgs,
  rightsOf,
  transactRequest,
} from '../../src/protocol/index.js'
import type { Field } from '../../src/protocol/index.js'

describe('the operation table', () => {
  it('marks every pid argument as one that must be the caller’s own', () => {
    for (const name of OPERATION_NAMES) {
      const spec = OPERATIONS[name]
      const fields = Object.entries(spec.args as Readonly<Record<string, Field>>)
      for (const [arg, field] of fields) {
        if (field === 'pid' || field === 'pids') {
          assert.ok(spec.own.includes(arg), `${name}: "${arg}" is a pid but not an own pid`)
        }
      }
      // An option that names an owner is an own pid too (kv.put's options.owner).
      for (const path of spec.own) {
        const [head] = path.split('.')
        assert.ok(head !== undefined && head in spec.args, `${name}: own "${path}" is no argument`)
      }
    }
  })

  it('refuses a pid that is not a non-empty string as InvalidArgument, never a TypeError', () => {
    // Found by ws-fuzz: kv.put with options.owner [null] reached the own-pid rule as null and
    // answered Internal. Every own-pid path, as a value and inside a list.
    for (const name of OPERATION_NAMES) {
      for (const path of OPERATIONS[name].own) {
        const [head, tail] = path.split('.') as [string, string | undefined]
        for (const bad of [null, 5, '', {}, [null], [''], [7], ['ok', {}]]) {
          const args = tail === undefined ? { [head]: bad } : { [head]: { [tail]: bad } }
          assert.throws(
            () => ownPidsOf(name, args as never),
            { code: 'InvalidArgument' },
            `${name} ${path} = ${JSON.stringify(bad)}`,
          )
        }
      }
    }
  })

  it('says what every write adds to the record quota, or that it only removes', () => {
    const adding = OPERATION_NAMES.filter((name) => 'adds' in OPERATIONS[name])
    assert.deepEqual(
      [...adding].sort(),
      ['assert', 'claim', 'groups.join', 'kv.put', 'names.register', 'transact'].sort(),
    )
  })

  it('checks arguments by their schema and keeps only the known options', () => {
    const args = parseArgs('kv.put', {
      bucket: 'b',
      key: 'k',
      value: 1,
      options: { owner: 'p', signal: 'fake' },
      extra: true,
    })
    assert.deepEqual(args, { bucket: 'b', key: 'k', value: 1, options: { owner: 'p' } })
    assert.deepEqual(ownPidsOf('kv.put', args), ['p'])
    assert.deepEqual(rightsOf('kv.put', args), [['$kv.b', 'write']])
    assert.throws(() => parseArgs('kv.put', { bucket: 'b', key: 'k' }), /kv\.put needs "value"/)
    assert.throws(() => parseArgs('groups.join', { scope: 's', group: 'g', pids: [1] }), {
      code: 'InvalidArgument',
    })
    assert.throws(() => parseArgs('get', []), /"args" must be an object/)
  })

  it('validates a transaction once, with one message per mistake', () => {
    assert.throws(() => transactRequest({}), /needs "then"/)
    assert.throws(() => transactRequest({ then: [], if: {} }), /"if" must be an array/)
    assert.throws(() => transactRequest({ then: [{ op: 'assert' }] }), /needs a "kind"/)
    const request = transactRequest({ then: [{ op: 'claim', kind: 'k' }], extra: 1 })
    assert.deepEqual(request, { then: [{ op: 'claim', kind: 'k' }] })
    assert.deepEqual(rightsOf('transact', { pid: 'p', request }), [
      ['k', 'write'],
      ['k', 'read'],
    ])
  })
})
