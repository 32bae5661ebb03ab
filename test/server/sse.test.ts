import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { describe, it } from 'node:test'
import { openSse, start, until } from './helpers.js'

describe('SSE watches', () => {
  it('streams a snapshot then live events, each with its revision as id', async () => {
    const h = await start()
    try {
      const { session } = await h.session()
      await h.call('PUT', '/v1/records/route/a', { session, body: { data: { n: 1 } } })
      const watch = await openSse(`${h.url}/v1/watch/route?id=a*`)
      assert.equal(watch.status, 200)
      assert.match(watch.headers.get('content-type') ?? '', /^text\/event-stream/)
      const snapshot = await watch.next()
      assert.equal(snapshot?.event, 'snapshot')
      assert.equal(snapshot?.id, String(snapshot?.data.revision))
      assert.deepEqual(
        snapshot?.data.records.map((r: { id: string }) => r.id),
        ['a'],
      )

      await h.call('PUT', '/v1/records/route/a', { session, body: { data: { n: 2 } } })
      await h.call('PUT', '/v1/records/route/b', { session, body: { data: {} } }) // not selected
      const changed = await watch.next()
      assert.equal(changed?.event, 'asserted')
      assert.equal(changed?.data.previous.data.n, 1)
      assert.equal(changed?.id, String(changed?.data.revision))
      await h.call('DELETE', '/v1/records/route/a', { session })
      const retracted = await watch.next()
      assert.equal(retracted?.event, 'retracted')
      assert.equal(retracted?.data.reason, 'retract')

      await h.call('POST', '/v1/send', {
        session,
        body: { target: { kind: 'route', id: 'a' }, message: 'hi' },
      })
      const message = await watch.next()
      assert.equal(message?.event, 'message')
      assert.equal(message?.id, undefined)
      watch.close()
    } finally {
      await h.close()
    }
  })

  it('resumes from Last-Event-ID (and fromRevision) without a snapshot', async () => {
    const h = await start()
    try {
      const { session } = await h.session()
      const first = await openSse(`${h.url}/v1/watch/job`)
      const seen = (await first.next())?.id
      assert.ok(seen !== undefined)
      first.close()
      await h.call('PUT', '/v1/records/job/1', { session, body: { data: 1 } })
      await h.call('PUT', '/v1/records/job/2', { session, body: { data: 2 } })

      const resumed = await openSse(`${h.url}/v1/watch/job?fromRevision=0`, {
        'last-event-id': seen,
      })
      const events = await resumed.drain()
      assert.deepEqual(
        events.map((e) => [e.event, e.data.record?.id]),
        [
          ['asserted', '1'],
          ['asserted', '2'],
        ],
      )
      resumed.close()

      const byQuery = await openSse(`${h.url}/v1/watch/job?fromRevision=${events[0]?.id}`)
      assert.deepEqual(
        (await byQuery.drain()).map((e) => e.data.record?.id),
        ['2'],
      )
      byQuery.close()
    } finally {
      await h.close()
    }
  })

  it('answers a bad watch selector with a JSON 400, before any stream starts', async () => {
    const h = await start()
    try {
      const res = await h.call('GET', '/v1/watch/job?labels=%21%21', {
        headers: { accept: 'text/event-stream' },
      })
      assert.equal(res.status, 400)
      assert.equal(res.body.error.code, 'InvalidSelector')
      assert.equal(typeof res.body.error.position, 'number')
    } finally {
      await h.close()
    }
  })

  it('frees the watcher when the client disconnects, and sends heartbeats', async () => {
    const h = await start({ limits: { sseHeartbeatMs: 30 } })
    try {
      const baseline = h.ds.stats.watchers
      const watch = await openSse(`${h.url}/v1/watch/job`)
      await watch.next()
      assert.equal(h.ds.stats.watchers, baseline + 1)
      await until(() => watch.comments.length >= 2, 2000, 'heartbeats')
      watch.close()
      await until(() => h.ds.stats.watchers === baseline, 2000, 'watcher freed')
      assert.equal(h.server.stats.sseStreams, 0)
    } finally {
      await h.close()
    }
  })

  it('ends a slow client with a final reset instead of buffering without bound', async () => {
    const h = await start({ limits: { sseBufferBytes: 64 * 1024 } })
    try {
      const baseline = h.ds.stats.watchers
      const { port } = new URL(h.url)
      // A raw socket that never reads: the server's writes pile up behind it.
      const socket = connect(Number(port), '127.0.0.1')
      socket.pause()
      await new Promise<void>((resolve) => socket.once('connect', resolve))
      socket.write(
        'GET /v1/watch/blob HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n',
      )
      await until(() => h.ds.stats.watchers === baseline + 1, 2000, 'watch open')
      const proc = h.ds.process('producer')
      const blob = 'x'.repeat(64 * 1024)
      for (let i = 0; i < 400 && h.server.stats.sseStreams > 0; i++) {
        await proc.assert('blob', String(i), blob)
        await new Promise((resolve) => setImmediate(resolve))
      }
      await until(() => h.server.stats.sseStreams === 0, 5000, 'slow stream closed')
      await until(() => h.ds.stats.watchers === baseline, 2000, 'watcher freed')
      // What did reach the socket ends with the reset.
      let tail = ''
      socket.on('data', (chunk: Buffer) => {
        tail = (tail + chunk.toString('latin1')).slice(-200)
      })
      socket.resume()
      await until(() => tail.includes('slow-consumer'), 5000, 'final reset read')
      assert.match(tail, /event: reset\ndata: \{"type":"reset","reason":"slow-consumer"\}/)
      socket.destroy()
    } finally {
      await h.close()
    }
  })

  it('ends every stream on close()', async () => {
    const h = await start()
    const watch = await openSse(`${h.url}/v1/watch/job`)
    await watch.next()
    await h.close()
    assert.equal(await watch.next(), undefined)
  })
})

describe('SSE facade streams', () => {
  it('streams a KV bucket: replay without ids, live changes with ids', async () => {
    const h = await start()
    try {
      const kv = h.ds.kv('config')
      await kv.put('feature/a', true)
      const watch = await openSse(`${h.url}/v1/kv/config/watch?prefix=feature/`)
      const replay = await watch.next()
      assert.deepEqual(
        [replay?.event, replay?.data.key, replay?.data.isUpdate, replay?.id],
        ['put', 'feature/a', false, undefined],
      )
      await h.call('PUT', '/v1/kv/config/feature/b', { body: { value: 1 } })
      await h.call('DELETE', '/v1/kv/config/feature/a')
      const live = await watch.drain()
      assert.deepEqual(
        live.map((e) => [e.event, e.data.key, e.data.isUpdate]),
        [
          ['put', 'feature/b', true],
          ['delete', 'feature/a', true],
        ],
      )
      assert.equal(live[1]?.id, String(live[1]?.data.revision))
      watch.close()
    } finally {
      await h.close()
    }
  })

  it('monitors a group scope: snapshot, join, leave on session end', async () => {
    const h = await start()
    try {
      const { session, pid } = await h.session('member')
      const monitor = await openSse(`${h.url}/v1/groups/jobs/monitor?group=workers`)
      assert.deepEqual((await monitor.next())?.data.groups, {})
      await h.call('POST', '/v1/groups/jobs/workers/join', { session })
      const join = await monitor.next()
      assert.deepEqual([join?.event, join?.data.pids, join?.id], ['join', [pid], undefined])
      await h.call('DELETE', `/v1/sessions/${session}`)
      const leave = await monitor.next()
      assert.deepEqual([leave?.event, leave?.data.pids], ['leave', [pid]])
      monitor.close()
    } finally {
      await h.close()
    }
  })
})
