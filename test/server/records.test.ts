import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { z } from 'zod'
import { start } from './helpers.js'
import type { Harness } from './helpers.js'

describe('HTTP records API', () => {
  let h: Harness
  let s: string
  before(async () => {
    h = await start()
    await h.ds.defineKind('person', { schema: z.object({ name: z.string() }) })
    await h.ds.defineKind('worker', { fields: ['pool', 'status'], indexes: ['pool'] })
    s = (await h.session('writer')).session
  })
  after(() => h.close())

  it('asserts, reads, lists and retracts a record with a session', async () => {
    const put = await h.call('PUT', '/v1/records/api.route/health', {
      session: s,
      body: { data: { path: '/health' }, labels: { env: 'prod' } },
    })
    assert.equal(put.status, 200)
    assert.equal(put.body.owner, (await h.ds.list('api.route')).items[0]?.owner)
    assert.deepEqual(put.body.labels, { env: 'prod' })

    const got = await h.call('GET', '/v1/records/api.route/health')
    assert.equal(got.status, 200)
    assert.deepEqual(got.body.data, { path: '/health' })

    const listed = await h.call('GET', '/v1/records/api.route?labels=env%3Dprod')
    assert.equal(listed.body.items.length, 1)
    assert.equal(listed.body.revision, h.ds.revision)

    const gone = await h.call(
      'DELETE',
      `/v1/records/api.route/health?ifRevision=${put.body.revision}`,
      { session: s },
    )
    assert.equal(gone.status, 200)
    assert.equal(gone.body.id, 'health')
    assert.equal((await h.call('GET', '/v1/records/api.route/health')).status, 404)
  })

  it('takes ids with slashes and percent-encoding from the rest of the path', async () => {
    await h.call('PUT', '/v1/records/api.route/a/b%20c', { session: s, body: { data: 1 } })
    assert.ok(await h.ds.get('api.route', 'a/b c'))
  })

  it('serves the selector query parameters and explain', async () => {
    for (const [id, pool, status] of [
      ['w1', 'cpu', 'free'],
      ['w2', 'cpu', 'busy'],
      ['w3', 'gpu', 'free'],
    ] as const) {
      await h.call('PUT', `/v1/records/worker/${id}`, {
        session: s,
        body: { data: { pool, status } },
      })
    }
    const free = await h.call('GET', '/v1/records/worker?fields=pool%3Dcpu,status%3Dfree')
    assert.deepEqual(
      free.body.items.map((r: { id: string }) => r.id),
      ['w1'],
    )
    const byId = await h.call(
      'GET',
      '/v1/records/worker?id=w*&owner=' + encodeURIComponent(free.body.items[0]?.owner ?? ''),
    )
    assert.equal(byId.body.items.length, 3)
    const plan = await h.call('GET', '/v1/explain/worker?fields=pool%3Dgpu')
    assert.deepEqual(plan.body, { index: 'field:pool', scanned: 'index', candidates: 1 })
  })

  it('pages with limit and continue', async () => {
    const first = await h.call('GET', '/v1/records/worker?limit=2')
    assert.equal(first.body.items.length, 2)
    assert.equal(typeof first.body.continue, 'string')
    const second = await h.call(
      'GET',
      `/v1/records/worker?limit=2&continue=${encodeURIComponent(first.body.continue)}`,
    )
    assert.deepEqual(
      second.body.items.map((r: { id: string }) => r.id),
      ['w3'],
    )
    assert.equal(second.body.continue, undefined)
    assert.equal(second.body.revision, first.body.revision)
  })

  it('maps bad selectors and query parameters to 400', async () => {
    const bad = await h.call('GET', '/v1/records/worker?fields=pool%21cpu')
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'InvalidSelector')
    assert.equal(typeof bad.body.error.position, 'number')
    const closed = await h.call('GET', '/v1/records/worker?fields=zone%3Deu')
    assert.equal(closed.body.error.code, 'InvalidSelector')
    const unknown = await h.call('GET', '/v1/records/worker?feilds=pool%3Dcpu')
    assert.equal(unknown.status, 400)
    assert.match(unknown.body.error.message, /feilds/)
    const limit = await h.call('GET', '/v1/records/worker?limit=abc')
    assert.equal(limit.body.error.code, 'InvalidArgument')
  })

  it('maps engine errors to statuses with their extra fields', async () => {
    const other = (await h.session('other')).session
    const mine = await h.call('PUT', '/v1/records/job/1', { session: s, body: { data: {} } })

    const notOwner = await h.call('PUT', '/v1/records/job/1', {
      session: other,
      body: { data: {} },
    })
    assert.equal(notOwner.status, 403)
    assert.equal(notOwner.body.error.code, 'NotOwner')
    assert.equal(notOwner.body.error.owner, mine.body.owner)

    const conflict = await h.call('PUT', '/v1/records/job/1', {
      session: s,
      body: { data: {}, ifRevision: 1 },
    })
    assert.equal(conflict.status, 409)
    assert.equal(conflict.body.error.code, 'Conflict')
    assert.equal(conflict.body.error.currentRevision, mine.body.revision)

    const schema = await h.call('PUT', '/v1/records/person/p', {
      session: s,
      body: { data: { name: 1 } },
    })
    assert.equal(schema.status, 400)
    assert.equal(schema.body.error.code, 'SchemaViolation')
    assert.ok(Array.isArray(schema.body.error.issues))

    const missing = await h.call('DELETE', '/v1/records/job/nope', { session: s })
    assert.equal(missing.status, 404)
    assert.equal(missing.body.error.code, 'NotFound')

    const noSession = await h.call('PUT', '/v1/records/job/2', { body: { data: {} } })
    assert.equal(noSession.status, 400)
    assert.equal(noSession.body.error.code, 'InvalidArgument')
    assert.match(noSession.body.error.message, /session/)

    const reserved = await h.call('PUT', '/v1/records/$name/x', { session: s, body: { data: {} } })
    assert.equal(reserved.body.error.code, 'InvalidArgument')

    const noData = await h.call('PUT', '/v1/records/job/3', { session: s, body: {} })
    assert.match(noData.body.error.message, /data/)

    const badJson = await h.call('PUT', '/v1/records/job/3', { session: s, body: '{"data":' })
    assert.equal(badJson.status, 400)
    assert.match(badJson.body.error.message, /JSON/)
  })

  it('answers 404 for unknown routes and 405 with Allow for wrong methods', async () => {
    const nope = await h.call('GET', '/v2/nothing')
    assert.equal(nope.status, 404)
    assert.equal(nope.body.error.code, 'NotFound')
    const wrong = await h.call('POST', '/v1/records/job/1')
    assert.equal(wrong.status, 405)
    assert.equal(wrong.headers.get('allow'), 'DELETE, GET, PUT')
  })

  it('transacts all or nothing', async () => {
    const ok = await h.call('POST', '/v1/transact', {
      session: s,
      body: {
        if: [{ kind: 'actor', id: 'a1', exists: false }],
        then: [
          { op: 'assert', kind: 'actor', id: 'a1', data: { state: 'new' } },
          { op: 'assert', kind: 'actor', id: 'a2', data: { state: 'new' } },
        ],
      },
    })
    assert.equal(ok.status, 200)
    assert.equal(ok.body.results.length, 2)
    assert.equal(ok.body.revision, h.ds.revision)
    const failed = await h.call('POST', '/v1/transact', {
      session: s,
      body: {
        if: [{ kind: 'actor', id: 'a1', exists: false }],
        then: [{ op: 'retract', kind: 'actor', id: 'a2' }],
      },
    })
    assert.equal(failed.status, 409)
    assert.ok(await h.ds.get('actor', 'a2'))
    const shape = await h.call('POST', '/v1/transact', { session: s, body: { then: 'x' } })
    assert.equal(shape.body.error.code, 'InvalidArgument')
  })

  it('claims a record, and answers {} when nothing matches', async () => {
    const claimed = await h.call('POST', '/v1/claim/worker', {
      session: s,
      body: { fields: 'pool=gpu,status=free', patch: { status: 'busy' } },
    })
    assert.equal(claimed.body.record.id, 'w3')
    assert.equal(claimed.body.record.data.status, 'busy')
    const none = await h.call('POST', '/v1/claim/worker', {
      session: s,
      body: { fields: 'pool=gpu,status=free', patch: { status: 'busy' } },
    })
    assert.deepEqual(none.body, {})
  })

  it('sends a message to a pid and reports deliveries', async () => {
    const proc = h.ds.process('listener')
    const sent = await h.call('POST', '/v1/send', {
      session: s,
      body: { target: proc.id, message: { hi: 1 } },
    })
    assert.deepEqual(sent.body, { delivered: 1 })
    const got = await proc.messages.next()
    assert.deepEqual(got.value?.message, { hi: 1 })
    await proc.exit()
  })

  it('refuses a body over the limit with 413 TooLarge', async () => {
    const big = await h.call('PUT', '/v1/records/job/big', {
      session: s,
      body: { data: 'x'.repeat(1024 * 1024 + 1) },
    })
    assert.equal(big.status, 413)
    assert.equal(big.body.error.code, 'TooLarge')
  })
})

describe('HTTP server options and probes', () => {
  it('refuses a non-loopback host without insecure, naming the reason', async () => {
    await assert.rejects(start({ host: '0.0.0.0' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'InvalidArgument')
      assert.match(err.message, /authentication/)
      assert.match(err.message, /insecure/)
      return true
    })
  })

  it('refuses a streamed (chunked) body once it passes the limit', async () => {
    const h = await start({ limits: { maxBodyBytes: 1024 } })
    try {
      const { session } = await h.session()
      const chunks = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"data":"' + 'x'.repeat(4096)))
          controller.enqueue(new TextEncoder().encode('"}'))
          controller.close()
        },
      })
      const res = await fetch(`${h.url}/v1/records/job/1`, {
        method: 'PUT',
        headers: { 'dataspace-session': session, 'content-type': 'application/json' },
        body: chunks,
        duplex: 'half',
      })
      assert.equal(res.status, 413)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'TooLarge')
    } finally {
      await h.close()
    }
  })

  it('is live and ready, then not ready once the dataspace is closed (503 Closed on use)', async () => {
    const h = await start()
    try {
      assert.equal((await h.call('GET', '/livez')).status, 200)
      const ready = (await h.call('GET', '/readyz')).body as unknown as Record<string, unknown>
      assert.equal(ready.ready, true)
      await h.ds.close()
      assert.equal((await h.call('GET', '/readyz')).status, 503)
      const closed = await h.call('GET', '/v1/records/job')
      assert.equal(closed.status, 503)
      assert.equal(closed.body.error.code, 'Closed')
    } finally {
      await h.close()
    }
  })
})
