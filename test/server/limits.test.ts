import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { errorFromWire } from '../../src/protocol/index.js'
import { RateLimited, TooLarge } from '../../src/index.js'
import { STATUS_BY_CODE, toWireError } from '../../src/server/index.js'
import type { ServerLimits } from '../../src/server/index.js'
import { openSse, start, until } from './helpers.js'
import type { Harness } from './helpers.js'

/** A raw WebSocket client: every server message in arrival order, `call` waits for its answer. */
interface WsClient {
  readonly socket: WebSocket
  readonly messages: Record<string, unknown>[]
  readonly pid: string
  call(op: string, args?: unknown): Promise<Record<string, unknown>>
  /** Resolves with the close code. */
  closed: Promise<number>
  close(): void
}

async function wsConnect(h: Harness): Promise<WsClient> {
  const socket = new WebSocket(`${h.url.replace('http', 'ws')}/v1/ws`)
  const messages: Record<string, unknown>[] = []
  const waiters: (() => void)[] = []
  socket.on('message', (data: Buffer) => {
    const parsed = JSON.parse(data.toString()) as unknown
    for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
      messages.push(m as Record<string, unknown>)
    }
    for (const wake of waiters.splice(0)) wake()
  })
  const closed = once(socket, 'close').then(([code]) => code as number)
  await once(socket, 'open')
  const waitFor = async (
    match: (m: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>> => {
    for (;;) {
      const found = messages.find(match)
      if (found !== undefined) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  socket.send(JSON.stringify({ type: 'hello', v: 1, name: 'limits' }))
  const welcome = await waitFor((m) => m.type === 'welcome')
  let next = 1
  return {
    socket,
    messages,
    pid: (welcome.session as { pid: string }).pid,
    async call(op, args) {
      const id = next++
      socket.send(JSON.stringify({ type: 'call', id, op, args }))
      return waitFor((m) => m.id === id && (m.type === 'result' || m.type === 'error'))
    },
    closed,
    close() {
      socket.close()
    },
  }
}

function errorOf(answer: Record<string, unknown>): Record<string, unknown> {
  assert.equal(answer.type, 'error', JSON.stringify(answer))
  return answer.error as Record<string, unknown>
}

async function scrape(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text()
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const hits = (text: string, limit: string): number | undefined =>
  value(text, `dataspace_limit_hits_total{limit="${limit}"}`)

function withLimits(limits: Partial<ServerLimits>): Promise<Harness> {
  return start({ limits })
}

describe('server limits', () => {
  it('maxRecordsPerSession over HTTP: counts children, allows updates and retracts', async () => {
    const h = await withLimits({ maxRecordsPerSession: 2 })
    try {
      const { session } = await h.session()
      const put = (id: string, extra: Record<string, unknown> = {}) =>
        h.call('PUT', `/v1/records/task/${id}`, { session, body: { data: {}, ...extra } })
      assert.equal((await put('a')).status, 200)
      assert.equal((await put('b')).status, 200)
      const refused = await put('c')
      assert.equal(refused.status, 413)
      assert.equal(refused.body.error.code, 'TooLarge')
      assert.match(refused.body.error.message, /limits\.maxRecordsPerSession \(2\)/)
      assert.match(refused.body.error.message, /raise the limit/)
      assert.equal(
        (refused.body.error as unknown as { limit: string }).limit,
        'maxRecordsPerSession',
      )
      // An update of an owned record adds nothing; an ownerless record is not the session's.
      assert.equal((await put('a', { data: { v: 2 } })).status, 200)
      assert.equal((await put('free', { owner: null })).status, 200)
      // A transaction that would add a record is refused as a whole.
      const tx = await h.call('POST', '/v1/transact', {
        session,
        body: { then: [{ op: 'assert', kind: 'task', id: 'd', data: {} }] },
      })
      assert.equal(tx.status, 413)
      // Retracting makes room.
      assert.equal((await h.call('DELETE', '/v1/records/task/b', { session })).status, 200)
      assert.equal((await put('c')).status, 200)
      assert.equal(hits(await scrape(h), 'maxRecordsPerSession'), 2)
    } finally {
      await h.close()
    }
  })

  it('maxRecordsPerSession over WebSocket counts child processes too', async () => {
    const h = await withLimits({ maxRecordsPerSession: 2 })
    const ws = await wsConnect(h)
    try {
      const child = `${ws.pid}.1`
      assert.equal((await ws.call('process.open', { name: 'child', pid: child })).type, 'result')
      const assert_ = (pid: string, id: string) =>
        ws.call('assert', { pid, kind: 'task', id, data: {} })
      assert.equal((await assert_(ws.pid, 'a')).type, 'result')
      assert.equal((await assert_(child, 'b')).type, 'result')
      const error = errorOf(await assert_(child, 'c'))
      assert.equal(error.code, 'TooLarge')
      assert.equal(error.limit, 'maxRecordsPerSession')
      assert.equal((await ws.call('kv.put', { bucket: 'b', key: 'k', value: 1 })).type, 'result')
      const owned = await ws.call('kv.put', {
        bucket: 'b',
        key: 'mine',
        value: 1,
        options: { owner: ws.pid },
      })
      assert.equal(errorOf(owned).code, 'TooLarge')
      assert.equal((await ws.call('retract', { pid: child, kind: 'task', id: 'b' })).type, 'result')
      assert.equal((await assert_(child, 'c')).type, 'result')
    } finally {
      ws.close()
      await h.close()
    }
  })

  it('maxStreamsPerSession over SSE: per session, released when a stream closes', async () => {
    const h = await withLimits({ maxStreamsPerSession: 1 })
    try {
      const { session } = await h.session()
      const first = await openSse(`${h.url}/v1/watch/task`, { 'dataspace-session': session })
      assert.equal(first.status, 200)
      const second = await h.call('GET', '/v1/watch/task', {
        session,
        headers: { accept: 'text/event-stream' },
      })
      assert.equal(second.status, 413)
      assert.equal(second.body.error.code, 'TooLarge')
      assert.match(second.body.error.message, /maxStreamsPerSession \(1\)/)
      // Another session has its own allowance.
      const other = await h.session('other')
      const third = await openSse(`${h.url}/v1/kv/cfg/watch`, {
        'dataspace-session': other.session,
      })
      assert.equal(third.status, 200)
      third.close()
      first.close()
      await until(() => h.server.stats.sseStreams === 0)
      const again = await openSse(`${h.url}/v1/watch/task`, { 'dataspace-session': session })
      assert.equal(again.status, 200)
      again.close()
      assert.equal(hits(await scrape(h), 'maxStreamsPerSession'), 1)
    } finally {
      await h.close()
    }
  })

  it('maxStreamsPerSession over WebSocket: TooLarge on the stream call, room after cancel', async () => {
    const h = await withLimits({ maxStreamsPerSession: 2 })
    const ws = await wsConnect(h)
    try {
      assert.equal((await ws.call('watch', { kind: 'task' })).type, 'result')
      assert.equal((await ws.call('kv.watch', { bucket: 'cfg' })).type, 'result')
      const error = errorOf(await ws.call('names.watch', {}))
      assert.equal(error.code, 'TooLarge')
      assert.equal(error.limit, 'maxStreamsPerSession')
      ws.socket.send(JSON.stringify({ type: 'cancel', id: 1 }))
      await until(async () => (await ws.call('watch', { kind: 'other' })).type === 'result')
    } finally {
      ws.close()
      await h.close()
    }
  })

  it('maxCallsPerSecond over HTTP: 429 RateLimited with retryAfterMs and Retry-After', async () => {
    // One call a second, bursts of 3: the 4th call in a row is over.
    const h = await withLimits({ maxCallsPerSecond: 1, callBurst: 3 })
    try {
      const { session } = await h.session() // counted against the client address
      for (let i = 0; i < 3; i++) {
        assert.equal((await h.call('GET', '/v1/records/task', { session })).status, 200)
      }
      const refused = await h.call('GET', '/v1/records/task', { session })
      assert.equal(refused.status, 429)
      assert.equal(refused.body.error.code, 'RateLimited')
      const retryAfterMs = (refused.body.error as unknown as { retryAfterMs: number }).retryAfterMs
      assert.ok(retryAfterMs > 0 && retryAfterMs <= 1000, String(retryAfterMs))
      assert.equal(refused.headers.get('retry-after'), '1')
      // Probes and scrapes are never limited.
      assert.equal((await h.call('GET', '/livez')).status, 200)
      const text = await scrape(h)
      assert.equal(hits(text, 'maxCallsPerSecond'), 1)
      assert.match(
        text,
        /dataspace_operations_total\{kind="",op="request",outcome="RateLimited"\} 1/,
      )
    } finally {
      await h.close()
    }
  })

  it('maxCallsPerSecond over WebSocket: the call is answered RateLimited', async () => {
    const h = await withLimits({ maxCallsPerSecond: 1, callBurst: 2 })
    const ws = await wsConnect(h)
    try {
      assert.equal((await ws.call('get', { kind: 'task', id: 'x' })).type, 'result')
      assert.equal((await ws.call('get', { kind: 'task', id: 'x' })).type, 'result')
      const error = errorOf(await ws.call('get', { kind: 'task', id: 'x' }))
      assert.equal(error.code, 'RateLimited')
      assert.equal(typeof error.retryAfterMs, 'number')
      assert.equal(hits(await scrape(h), 'maxCallsPerSecond'), 1)
    } finally {
      ws.close()
      await h.close()
    }
  })

  it('maxFrameBytes closes the WebSocket with 1009 and counts the hit', async () => {
    const h = await withLimits({ maxFrameBytes: 1024 })
    const ws = await wsConnect(h)
    try {
      ws.socket.send(
        JSON.stringify({ type: 'call', id: 1, op: 'get', args: { pad: 'x'.repeat(2000) } }),
      )
      assert.equal(await ws.closed, 1009)
      await until(async () => hits(await scrape(h), 'maxFrameBytes') === 1)
    } finally {
      ws.close()
      await h.close()
    }
  })

  it('maxBodyBytes counts its hits', async () => {
    const h = await withLimits({ maxBodyBytes: 64 })
    try {
      const { session } = await h.session()
      const res = await h.call('PUT', '/v1/records/task/a', {
        session,
        body: { data: { pad: 'x'.repeat(200) } },
      })
      assert.equal(res.status, 413)
      assert.equal((res.body.error as unknown as { limit: string }).limit, 'maxBodyBytes')
      assert.equal(hits(await scrape(h), 'maxBodyBytes'), 1)
    } finally {
      await h.close()
    }
  })

  it('logs limit hits and session events without secrets', async () => {
    const lines: Record<string, unknown>[] = []
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    )
    const h = await start({ logger, limits: { maxRecordsPerSession: 1 } })
    try {
      const { session, pid, resumeToken } = await h.session()
      await h.call('PUT', '/v1/records/task/a', { session, body: { data: {} } })
      await h.call('PUT', '/v1/records/task/b', { session, body: { data: {} } })
      await h.call('DELETE', `/v1/sessions/${session}`)
      await until(() => lines.some((l) => l.msg === 'session ended'))
      const byMsg = (msg: string) => lines.find((l) => l.msg === msg)
      assert.equal(byMsg('server started')?.url, h.url)
      assert.equal(byMsg('session opened')?.pid, pid)
      assert.equal(byMsg('session ended')?.reason, 'normal')
      assert.equal(byMsg('limit hit')?.limit, 'maxRecordsPerSession')
      const text = JSON.stringify(lines)
      assert.ok(!text.includes(session), 'the session id is never logged')
      assert.ok(!text.includes(resumeToken), 'the resume token is never logged')
    } finally {
      await h.close()
    }
    assert.ok(lines.some((l) => l.msg === 'server stopped'))
  })

  it('logs auth failures with the token name only', async () => {
    const lines: Record<string, unknown>[] = []
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    )
    const secret = 'reader-secret-token-0123456789'
    const h = await start({
      logger,
      auth: {
        tokens: [{ name: 'reader', token: secret, rights: [{ kinds: '*', rights: ['read'] }] }],
      },
    })
    try {
      const bad = await h.call('GET', '/v1/records/task', {
        headers: { authorization: 'Bearer wrong-token-wrong-token-0000' },
      })
      assert.equal(bad.status, 401)
      const { session } = (
        await h.call('POST', '/v1/sessions', {
          body: { name: 'r' },
          headers: { authorization: `Bearer ${secret}` },
        })
      ).body as unknown as { session: string }
      const forbidden = await h.call('PUT', '/v1/records/task/a', {
        session,
        body: { data: {} },
        headers: { authorization: `Bearer ${secret}` },
      })
      assert.equal(forbidden.status, 403)
      assert.ok(lines.some((l) => l.msg === 'auth failed'))
      assert.equal(lines.find((l) => l.msg === 'forbidden')?.token, 'reader')
      assert.ok(!JSON.stringify(lines).includes(secret), 'tokens are never logged')
    } finally {
      await h.close()
    }
  })

  it('rejects limits that are not positive integers', async () => {
    await assert.rejects(withLimits({ maxStreamsPerSession: 0 }), /limits\.maxStreamsPerSession/)
  })

  it('rejects a time limit a timer cannot hold (over 2^31 − 1 ms Node fires it after 1 ms)', async () => {
    for (const name of ['nodeHeartbeatMs', 'wsPingIntervalMs', 'sseHeartbeatMs']) {
      await assert.rejects(withLimits({ [name]: 2 ** 31 }), new RegExp(`limits\\.${name}`))
    }
  })
})

describe('RateLimited on the wire', () => {
  it('maps to 429 and back to a RateLimited with retryAfterMs', () => {
    assert.equal(STATUS_BY_CODE.RateLimited, 429)
    const { status, body } = toWireError(
      new RateLimited('slow down', 250, { limit: 'maxCallsPerSecond' }),
    )
    assert.equal(status, 429)
    const back = errorFromWire(JSON.parse(JSON.stringify(body.error)))
    assert.ok(back instanceof RateLimited)
    assert.equal(back.code, 'RateLimited')
    assert.equal(back.message, 'slow down')
    assert.equal(back.retryAfterMs, 250)
    assert.equal(back.limit, 'maxCallsPerSecond')
  })

  it('TooLarge keeps the limit it names across the wire', () => {
    const { body } = toWireError(new TooLarge('too many', { limit: 'maxRecordsPerSession' }))
    const back = errorFromWire(body.error)
    assert.ok(back instanceof TooLarge)
    assert.equal(back.limit, 'maxRecordsPerSession')
  })
})
