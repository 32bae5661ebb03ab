import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { WebSocket } from 'ws'
import { openSse, start, until } from './helpers.js'
import type { Harness } from './helpers.js'

async function scrape(h: Harness): Promise<string> {
  const res = await fetch(`${h.url}/metrics`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
  return res.text()
}

/** The value of one series line, e.g. `dataspace_sessions` or `name{a="b"}`. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('/metrics', () => {
  it('exposes every series without a token when auth is off', async () => {
    const h = await start()
    try {
      const text = await scrape(h)
      for (const name of [
        'dataspace_operations_total',
        'dataspace_commit_latency_seconds',
        'dataspace_sessions',
        'dataspace_sse_streams',
        'dataspace_watchers',
        'dataspace_revision',
        'dataspace_watch_resets_total',
        'dataspace_dropped_watch_messages_total',
        'dataspace_dropped_mailbox_messages_total',
        'dataspace_sse_slow_consumer_closes_total',
        'dataspace_ws_connections',
        'dataspace_ws_paused_streams',
        'dataspace_ws_stream_pauses_total',
        'dataspace_ws_slow_consumer_closes_total',
        'dataspace_stream_queue_depth',
        'dataspace_limit_hits_total',
        'dataspace_session_events_total',
        'dataspace_cluster_nodes',
        'dataspace_backend_write_failing_seconds',
      ]) {
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
      }
      assert.equal(value(text, 'dataspace_sessions'), 0)
      assert.equal(value(text, 'dataspace_ws_connections'), 0)
      assert.equal(value(text, 'dataspace_stream_queue_depth'), 0)
      assert.equal(value(text, 'dataspace_backend_write_failing_seconds'), 0)
      // Every limit is there from the start, at 0.
      for (const limit of ['maxRecordsPerSession', 'maxStreamsPerSession', 'maxCallsPerSecond']) {
        assert.equal(value(text, `dataspace_limit_hits_total{limit="${limit}"}`), 0, limit)
      }
    } finally {
      await h.close()
    }
  })

  it('counts operations by outcome, write latency, sessions, watchers and revision', async () => {
    const h = await start()
    try {
      const { session } = await h.session()
      const put = await h.call('PUT', '/v1/records/api.route/a', { session, body: { data: {} } })
      assert.equal(put.status, 200)
      assert.equal((await h.call('GET', '/v1/records/api.route/a')).status, 200)
      assert.equal((await h.call('GET', '/v1/records/api.route/missing')).status, 404)
      const conflict = await h.call('PUT', '/v1/records/api.route/a', {
        session,
        body: { data: {}, ifRevision: 0 },
      })
      assert.equal(conflict.status, 409)
      const watch = await openSse(`${h.url}/v1/watch/api.route`)
      try {
        await watch.next()
        const text = await scrape(h)
        const ops = (op: string, outcome: string): number | undefined =>
          value(
            text,
            `dataspace_operations_total{kind="api.route",op="${op}",outcome="${outcome}"}`,
          )
        assert.equal(ops('assert', 'ok'), 1)
        assert.equal(ops('assert', 'Conflict'), 1)
        assert.equal(ops('get', 'ok'), 1)
        assert.equal(ops('get', 'NotFound'), 1)
        assert.equal(ops('watch', 'ok'), 1)
        assert.equal(
          value(text, 'dataspace_operations_total{kind="",op="sessions.open",outcome="ok"}'),
          1,
        )
        // Two asserts were handled (one failed): both were timed.
        assert.equal(value(text, 'dataspace_commit_latency_seconds_count'), 2)
        assert.equal(value(text, 'dataspace_sessions'), 1)
        assert.equal(value(text, 'dataspace_sse_streams'), 1)
        assert.equal(value(text, 'dataspace_watchers'), h.ds.stats.watchers)
        assert.ok(h.ds.stats.watchers >= 1)
        assert.equal(value(text, 'dataspace_revision'), h.ds.stats.revision)
      } finally {
        watch.close()
      }
      await until(() => h.server.stats.sseStreams === 0)
      const after = await scrape(h)
      assert.equal(value(after, 'dataspace_sse_streams'), 0)
    } finally {
      await h.close()
    }
  })

  it('counts WebSocket connections and session events', async () => {
    const h = await start()
    try {
      const socket = new WebSocket(`${h.url.replace('http', 'ws')}/v1/ws`)
      await once(socket, 'open')
      socket.send(JSON.stringify({ type: 'hello', v: 1 }))
      await once(socket, 'message')
      const text = await scrape(h)
      assert.equal(value(text, 'dataspace_ws_connections'), 1)
      assert.equal(value(text, 'dataspace_session_events_total{event="opened"}'), 1)
      const { session } = await h.session('http')
      assert.equal((await h.call('DELETE', `/v1/sessions/${session}`)).status, 204)
      socket.close()
      await until(() => h.server.stats.wsConnections === 0)
      await until(async () => {
        const later = await scrape(h)
        return value(later, 'dataspace_session_events_total{event="ended"}') === 1
      })
      assert.equal(value(await scrape(h), 'dataspace_ws_connections'), 0)
    } finally {
      await h.close()
    }
  })

  it('keeps a registry per server', async () => {
    const a = await start()
    const b = await start()
    try {
      await a.call('GET', '/v1/records/x')
      const text = await scrape(b)
      assert.equal(
        value(text, 'dataspace_operations_total{kind="x",op="list",outcome="ok"}'),
        undefined,
      )
      assert.equal(
        value(await scrape(a), 'dataspace_operations_total{kind="x",op="list",outcome="ok"}'),
        1,
      )
    } finally {
      await a.close()
      await b.close()
    }
  })
})
