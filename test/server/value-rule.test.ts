// Issue 10 items 1 and 2 (edge half): one value rule for everything a client sends, the same in
// process and over HTTP. Values no backend can store, fractional or huge TTLs, values nested too
// deep or too large are refused with InvalidArgument / TooLarge before anything is staged.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createDataspace, InvalidArgument, TooLarge } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { start } from './helpers.js'
import type { Harness } from './helpers.js'

const deep = (depth: number): unknown => {
  let value: unknown = 0
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

/** Percent-encodes an id; a lone surrogate (not UTF-8) as the bytes a naive encoder would send. */
const pathEscape = (id: string): string =>
  id
    .replace(/[\ud800-\udfff]/g, '\u0001')
    .split('\u0001')
    .map(encodeURIComponent)
    .join('%ED%A0%80')

/** A bad value and where it goes; `code` is the error both transports must answer. */
interface Case {
  readonly name: string
  readonly code: 'InvalidArgument' | 'TooLarge'
  readonly local: (ds: Dataspace) => Promise<unknown>
  readonly http: (h: Harness, session: string) => Promise<{ status: number; body: unknown }>
}

const put = (kind: string, id: string, body: unknown) => (h: Harness, session: string) =>
  h.call('PUT', `/v1/records/${kind}/${pathEscape(id)}`, { body, session })

const assertCase = (
  name: string,
  options: Record<string, unknown>,
  data: unknown = { ok: 1 },
  id = 'r',
): Case => ({
  name,
  code: 'InvalidArgument',
  local: (ds) => ds.process('p').assert('v.rule', id, data, options),
  http: put('v.rule', id, { data, ...options }),
})

const CASES: readonly Case[] = [
  assertCase('ttl 1500.5 (fractional)', { ttl: 1500.5 }),
  assertCase('ttl 1e308 (over the maximum)', { ttl: 1e308 }),
  assertCase('ttl over 10 years', { ttl: 10 * 365 * 24 * 3600 * 1000 + 1 }),
  assertCase('ttl 0', { ttl: 0 }),
  assertCase('ttl -5', { ttl: -5 }),
  assertCase('a U+0000 in a data string', {}, { s: 'a\u0000b' }),
  assertCase('a lone surrogate in a data string', {}, { s: '\ud800' }),
  assertCase('a lone low surrogate in a data key', {}, { ['x\udc00']: 1 }),
  assertCase('a U+0000 in a data key', {}, { ['\u0000']: 1 }),
  assertCase('a U+0000 in an id', {}, { ok: 1 }, 'a\u0000'),
  assertCase('a lone surrogate in an id', {}, { ok: 1 }, 'x\ud800'),
  assertCase('data nested 65 deep', {}, deep(65)),
  {
    name: 'data over maxValueBytes (1 MiB)',
    code: 'TooLarge',
    local: (ds) => ds.process('p').assert('v.rule', 'big', { s: 'x'.repeat(1024 * 1024) }),
    // Under maxBodyBytes (2 MiB here), over the value bound.
    http: put('v.rule', 'big', { data: { s: 'x'.repeat(1024 * 1024) } }),
  },
  {
    name: 'a message nested 65 deep (to a pid)',
    code: 'InvalidArgument',
    local: (ds) => ds.process('p').send(ds.process('q').id, deep(65)),
    http: (h, session) =>
      h.call('POST', '/v1/send', {
        body: { target: 'local/nobody#9', message: deep(65) },
        session,
      }),
  },
  {
    name: 'a message with a lone surrogate (to a record)',
    code: 'InvalidArgument',
    local: (ds) => ds.process('p').send({ kind: 'v.rule', id: 'r' }, '\ud800'),
    http: (h, session) =>
      h.call('POST', '/v1/send', {
        body: { target: { kind: 'v.rule', id: 'r' }, message: '\ud800' },
        session,
      }),
  },
  {
    name: 'a message nested 65 deep (to a group)',
    code: 'InvalidArgument',
    local: (ds) => ds.process('p').send({ group: 'g' }, deep(65)),
    http: (h, session) =>
      h.call('POST', '/v1/send', { body: { target: { group: 'g' }, message: deep(65) }, session }),
  },
  {
    name: 'a message with U+0000 (to a name)',
    code: 'InvalidArgument',
    local: (ds) => ds.process('p').send({ name: 'n' }, { s: '\u0000' }),
    http: (h, session) =>
      h.call('POST', '/v1/send', {
        body: { target: { name: 'n' }, message: { s: '\u0000' } },
        session,
      }),
  },
  {
    name: 'a KV value with a lone surrogate',
    code: 'InvalidArgument',
    local: (ds) => ds.kv('vr').put('k', { s: '\udbff' }),
    http: (h, session) =>
      h.call('PUT', '/v1/kv/vr/k', { body: { value: { s: '\udbff' } }, session }),
  },
  {
    name: 'a KV ttl of 1500.5',
    code: 'InvalidArgument',
    local: (ds) => ds.kv('vr').put('k', 1, { ttl: 1500.5 }),
    http: (h, session) =>
      h.call('PUT', '/v1/kv/vr/k', { body: { value: 1, ttl: 1500.5 }, session }),
  },
  {
    name: 'a KV key with U+0000',
    code: 'InvalidArgument',
    local: (ds) => ds.kv('vr').put('a\u0000', 1),
    http: (h, session) => h.call('PUT', '/v1/kv/vr/a%00', { body: { value: 1 }, session }),
  },
  {
    name: 'group member meta nested 65 deep',
    code: 'InvalidArgument',
    local: (ds) => ds.groups().join('g', ds.process('p').id, deep(65) as never),
    http: (h, session) =>
      h.call('POST', '/v1/groups/default/g/join', { body: { meta: deep(65) }, session }),
  },
  {
    name: 'name meta with U+0000',
    code: 'InvalidArgument',
    local: (ds) => ds.names.register(ds.process('p'), 'n', { s: '\u0000' }),
    http: (h, session) =>
      h.call('PUT', '/v1/names/n', { body: { meta: { s: '\u0000' } }, session }),
  },
  {
    name: 'a claim patch nested 65 deep',
    code: 'InvalidArgument',
    local: (ds) => ds.process('p').claim('v.rule', { patch: { x: deep(64) } }),
    http: (h, session) =>
      h.call('POST', '/v1/claim/v.rule', { body: { patch: { x: deep(64) } }, session }),
  },
  {
    name: 'a transact op with a fractional ttl',
    code: 'InvalidArgument',
    local: (ds) =>
      ds
        .process('p')
        .transact({ then: [{ op: 'assert', kind: 'v.rule', id: 't', data: 1, ttl: 0.5 }] }),
    http: (h, session) =>
      h.call('POST', '/v1/transact', {
        body: { then: [{ op: 'assert', kind: 'v.rule', id: 't', data: 1, ttl: 0.5 }] },
        session,
      }),
  },
  {
    name: 'a transact condition comparing a value nested 65 deep',
    code: 'InvalidArgument',
    local: (ds) =>
      ds.process('p').transact({
        if: [{ kind: 'v.rule', id: 'x', field: 'a', equals: deep(65) }],
        then: [],
      }),
    http: (h, session) =>
      h.call('POST', '/v1/transact', {
        body: { if: [{ kind: 'v.rule', id: 'x', field: 'a', equals: deep(65) }], then: [] },
        session,
      }),
  },
  {
    name: 'a U+0000 in a list selector (it would go to a backend query)',
    code: 'InvalidArgument',
    local: (ds) => ds.list('v.rule', { fields: 'a=\u0000' }),
    http: (h, session) => h.call('GET', '/v1/records/v.rule?fields=a%3D%00', { session }),
  },
]

describe('one value rule, in process and over HTTP', () => {
  let h: Harness
  before(async () => {
    h = await start({ limits: { maxBodyBytes: 2 * 1024 * 1024 } })
    // A record to claim, so that the patch reaches the merge too.
    await h.ds.process('seed').assert('v.rule', 'c', { free: true })
  })
  after(() => h.close())

  for (const c of CASES) {
    it(`refuses ${c.name}`, async () => {
      const ds = createDataspace()
      try {
        await ds.process('seed').assert('v.rule', 'c', { free: true })
        await assert.rejects(c.local(ds), (error: unknown) => {
          assert.ok(
            c.code === 'TooLarge' ? error instanceof TooLarge : error instanceof InvalidArgument,
            String(error),
          )
          return true
        })
        assert.equal(ds.revision, 1, 'nothing was staged')
      } finally {
        await ds.close()
      }
      const { session } = await h.session()
      const revision = h.ds.revision
      const res = await c.http(h, session)
      const body = res.body as { error?: { code: string; message: string } }
      assert.equal(body.error?.code, c.code, JSON.stringify(body).slice(0, 300))
      assert.equal(res.status, c.code === 'TooLarge' ? 413 : 400)
      assert.equal(h.ds.revision, revision, 'nothing was staged')
    })
  }

  it('accepts the largest values the rule allows: depth 64, integer ttl of 10 years, astral characters', async () => {
    const ds = createDataspace()
    try {
      const p = ds.process('p')
      const data = { deep: deep(63), s: '😀\uffff\u2028', n: -0, big: 1e308, tiny: 5e-324 }
      const record = await p.assert('v.rule', 'ok', data, { ttl: 10 * 365 * 24 * 3600 * 1000 })
      assert.deepEqual(record.data, data)
    } finally {
      await ds.close()
    }
  })
})
