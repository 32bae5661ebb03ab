import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadTokenFile, TokenTable, validateAuth } from '../../src/server/index.js'
import { ADMIN, API_WRITER, AUTH, bearer, KV_WRITER, READER } from './auth-fixtures.js'
import { openSse, start } from './helpers.js'
import type { Harness } from './helpers.js'

describe('auth matrix over HTTP', () => {
  let h: Harness
  before(async () => {
    h = await start({ auth: AUTH })
  })
  after(async () => {
    await h.close()
  })

  async function session(token: string): Promise<string> {
    const res = await h.call('POST', '/v1/sessions', {
      body: { name: 'client' },
      headers: bearer(token),
    })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return (res.body as unknown as { session: string }).session
  }

  it('answers 401 Unauthorized without a token, naming the header', async () => {
    for (const [method, path] of [
      ['GET', '/v1/records/api.route'],
      ['POST', '/v1/sessions'],
      ['GET', '/metrics'],
    ] as const) {
      const res = await h.call(method, path, method === 'POST' ? { body: { name: 'x' } } : {})
      assert.equal(res.status, 401, path)
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="dataspace"')
      assert.equal(res.body.error.code, 'Unauthorized')
      assert.match(res.body.error.message, /Authorization: Bearer/)
    }
  })

  it('answers 401 for a wrong token, a wrong-length token and a non-Bearer scheme', async () => {
    for (const authorization of [
      `Bearer ${ADMIN.slice(0, -1)}x`,
      'Bearer x',
      `Bearer ${ADMIN}${ADMIN}`,
      `Basic ${ADMIN}`,
    ]) {
      const res = await h.call('GET', '/v1/records/api.route', { headers: { authorization } })
      assert.equal(res.status, 401, authorization)
      assert.equal(res.body.error.code, 'Unauthorized')
    }
  })

  it('keeps the probes open without a token', async () => {
    assert.equal((await h.call('GET', '/livez')).status, 200)
    assert.equal((await h.call('GET', '/readyz')).status, 200)
  })

  it('lets a read token read but not write (403 Forbidden)', async () => {
    const list = await h.call('GET', '/v1/records/api.route', { headers: bearer(READER) })
    assert.equal(list.status, 200)
    const s = await session(READER)
    const put = await h.call('PUT', '/v1/records/api.route/a', {
      session: s,
      body: { data: {} },
      headers: bearer(READER),
    })
    assert.equal(put.status, 403)
    assert.equal(put.body.error.code, 'Forbidden')
    assert.match(put.body.error.message, /reader has no write right on kind "api\.route"/)
    const kv = await h.call('PUT', '/v1/kv/config/a', {
      body: { value: 1 },
      headers: bearer(READER),
    })
    assert.equal(kv.status, 403)
  })

  it('confines a write token to its kind glob', async () => {
    const s = await session(API_WRITER)
    const ok = await h.call('PUT', '/v1/records/api.route/a', {
      session: s,
      body: { data: { n: 1 } },
      headers: bearer(API_WRITER),
    })
    assert.equal(ok.status, 200)
    const outside = await h.call('PUT', '/v1/records/db.table/a', {
      session: s,
      body: { data: {} },
      headers: bearer(API_WRITER),
    })
    assert.equal(outside.status, 403)
    assert.equal(outside.body.error.code, 'Forbidden')
    const readOutside = await h.call('GET', '/v1/records/db.table', {
      headers: bearer(API_WRITER),
    })
    assert.equal(readOutside.status, 403)
    // Groups are kind $group.member: write lets it join, but not list the members.
    const join = await h.call('POST', '/v1/groups/default/workers/join', {
      session: s,
      body: {},
      headers: bearer(API_WRITER),
    })
    assert.equal(join.status, 200)
    const members = await h.call('GET', '/v1/groups/default/workers', {
      headers: bearer(API_WRITER),
    })
    assert.equal(members.status, 403)
    // Names are kind $name.
    const name = await h.call('PUT', '/v1/names/svc', {
      session: s,
      body: {},
      headers: bearer(API_WRITER),
    })
    assert.equal(name.status, 403)
  })

  it('checks every kind a transaction touches', async () => {
    const s = await session(API_WRITER)
    const mixed = await h.call('POST', '/v1/transact', {
      session: s,
      headers: bearer(API_WRITER),
      body: {
        then: [
          { op: 'assert', kind: 'api.route', id: 't1', data: {} },
          { op: 'assert', kind: 'db.table', id: 't1', data: {} },
        ],
      },
    })
    assert.equal(mixed.status, 403)
    assert.equal(await h.ds.get('api.route', 't1'), undefined)
    const condition = await h.call('POST', '/v1/transact', {
      session: s,
      headers: bearer(API_WRITER),
      body: {
        if: [{ kind: 'db.table', id: 'x', exists: false }],
        then: [{ op: 'assert', kind: 'api.route', id: 't2', data: {} }],
      },
    })
    assert.equal(condition.status, 403)
  })

  it('maps KV buckets to $kv.<bucket>', async () => {
    const put = await h.call('PUT', '/v1/kv/config/a', {
      body: { value: 1 },
      headers: bearer(KV_WRITER),
    })
    assert.equal(put.status, 200)
    const other = await h.call('PUT', '/v1/kv/secrets/a', {
      body: { value: 1 },
      headers: bearer(KV_WRITER),
    })
    assert.equal(other.status, 403)
    assert.match(other.body.error.message, /token #3 has no write right on kind "\$kv\.secrets"/)
  })

  it('checks watches before the stream starts', async () => {
    const denied = await openSse(`${h.url}/v1/watch/db.table`, bearer(API_WRITER))
    assert.equal(denied.status, 403)
    denied.close()
    const allowed = await openSse(`${h.url}/v1/watch/api.route`, bearer(API_WRITER))
    assert.equal(allowed.status, 200)
    allowed.close()
  })

  it('lets admin do everything, /metrics included; other tokens may not scrape', async () => {
    const s = await session(ADMIN)
    const put = await h.call('PUT', '/v1/records/db.table/a', {
      session: s,
      body: { data: {} },
      headers: bearer(ADMIN),
    })
    assert.equal(put.status, 200)
    const names = await h.call('PUT', '/v1/names/svc', {
      session: s,
      body: {},
      headers: bearer(ADMIN),
    })
    assert.equal(names.status, 200)
    const metrics = await fetch(`${h.url}/metrics`, { headers: bearer(ADMIN) })
    assert.equal(metrics.status, 200)
    const text = await metrics.text()
    // Refusals are counted: 401s before any operation is known, 403s under their operation.
    assert.match(
      text,
      /^dataspace_operations_total\{kind="",op="request",outcome="Unauthorized"\} [1-9]/m,
    )
    assert.match(
      text,
      /^dataspace_operations_total\{kind="db.table",op="assert",outcome="Forbidden"\} [1-9]/m,
    )
    const reader = await h.call('GET', '/metrics', { headers: bearer(READER) })
    assert.equal(reader.status, 403)
  })

  it('binds a session to the token that opened it', async () => {
    const s = await session(API_WRITER)
    const stolen = await h.call('PUT', '/v1/records/api.route/b', {
      session: s,
      body: { data: {} },
      headers: bearer(ADMIN),
    })
    assert.equal(stolen.status, 403)
    assert.match(stolen.body.error.message, /another token/)
    const heartbeat = await h.call('POST', `/v1/sessions/${s}/heartbeat`, {
      headers: bearer(READER),
    })
    assert.equal(heartbeat.status, 403)
    const end = await h.call('DELETE', `/v1/sessions/${s}`, { headers: bearer(READER) })
    assert.equal(end.status, 403)
    const own = await h.call('DELETE', `/v1/sessions/${s}`, { headers: bearer(API_WRITER) })
    assert.equal(own.status, 204)
  })

  it('binds to a non-loopback host once auth is configured', async () => {
    const open = await start({ auth: AUTH, host: '0.0.0.0' })
    await open.close()
  })
})

describe('TokenTable', () => {
  const table = new TokenTable(AUTH)

  it('authenticates the right token and rejects wrong ones of any length', () => {
    assert.equal(table.authenticate(`Bearer ${READER}`).name, 'reader')
    for (const header of [undefined, '', 'Bearer', 'Bearer a', `Bearer ${READER}x`, READER]) {
      assert.throws(() => table.authenticate(header), { code: 'Unauthorized' })
    }
  })

  it('gives admin read and write, and nothing outside the globs', () => {
    const admin = table.authenticate(`Bearer ${ADMIN}`)
    assert.ok(admin.can('anything', 'read') && admin.can('anything', 'write'))
    const writer = table.authenticate(`Bearer ${API_WRITER}`)
    assert.ok(writer.can('api.route', 'write'))
    assert.ok(!writer.can('api.route', 'admin'))
    assert.ok(!writer.can('apix', 'read'))
  })
})

describe('token file validation', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dataspace-auth-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }

  it('loads a valid file', async () => {
    const path = await file('ok.json', JSON.stringify(AUTH))
    const loaded = await loadTokenFile(path)
    assert.equal(loaded.tokens.length, 4)
    assert.equal(loaded.tokens[0]?.name, 'admin')
  })

  it('names the file for a missing file and for bad JSON', async () => {
    await assert.rejects(loadTokenFile(join(dir, 'missing.json')), {
      code: 'InvalidArgument',
      message: /cannot read token file .*missing\.json/,
    })
    const bad = await file('bad.json', '{ tokens: ')
    await assert.rejects(loadTokenFile(bad), {
      code: 'InvalidArgument',
      message: /token file .*bad\.json is not valid JSON/,
    })
  })

  const token = 'a-token-of-enough-length'
  const cases: [string, unknown, RegExp][] = [
    ['a non-object', [], /the top level must be an object/],
    ['no tokens', { tokens: [] }, /"tokens" must be a non-empty array/],
    ['an unknown field', { tokens: [], extra: 1 }, /unknown field "extra"/],
    ['a short token', { tokens: [{ token: 'short', rights: [] }] }, /tokens\[0\]\.token must/],
    [
      'a repeated token',
      {
        tokens: [
          { token, rights: [] },
          { token, rights: [] },
        ],
      },
      /tokens\[1\]\.token repeats/,
    ],
    ['rights not an array', { tokens: [{ token, rights: {} }] }, /tokens\[0\]\.rights must/],
    [
      'an unknown right',
      { tokens: [{ token, rights: [{ kinds: '*', rights: ['delete'] }] }] },
      /tokens\[0\]\.rights\[0\]\.rights must be a non-empty array of "read", "write", "admin"/,
    ],
    [
      'an empty kinds glob',
      { tokens: [{ token, rights: [{ kinds: '', rights: ['read'] }] }] },
      /tokens\[0\]\.rights\[0\]\.kinds must be a non-empty kind glob/,
    ],
    [
      'a bad glob',
      { tokens: [{ token, rights: [{ kinds: 'a\\', rights: ['read'] }] }] },
      /tokens\[0\]\.rights\[0\]\.kinds is not a valid glob/,
    ],
    [
      'a typo in a grant',
      { tokens: [{ token, rights: [{ kind: '*', rights: ['read'] }] }] },
      /tokens\[0\]\.rights\[0\] has unknown field "kind"/,
    ],
  ]
  for (const [what, value, message] of cases) {
    it(`rejects ${what}`, async () => {
      assert.throws(() => validateAuth(value, 'test'), { code: 'InvalidArgument', message })
      const path = await file(`${what.replaceAll(' ', '-')}.json`, JSON.stringify(value))
      await assert.rejects(loadTokenFile(path), { code: 'InvalidArgument', message })
    })
  }

  it('validates the auth option of createServer too', async () => {
    await assert.rejects(start({ auth: { tokens: [] } }), { code: 'InvalidArgument' })
  })
})
