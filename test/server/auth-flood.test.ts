// Unauthenticated floods (issue 10 item 12): failed authentications are rate-limited per client
// address (429 past the burst), and the warn lines they cause are throttled like `limit hit`.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { AUTH, bearer, READER } from './auth-fixtures.js'
import { start } from './helpers.js'
import type { Harness } from './helpers.js'
import { RawWs } from './ws-helpers.js'

/** A pino logger whose lines land in `lines`, parsed. */
function captured(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      }
      done()
    },
  })
  return { logger: pino({ level: 'info' }, stream), lines }
}

async function flood(h: Harness, count: number, headers: Record<string, string>, path: string) {
  const statuses = new Map<number, number>()
  let limited: Awaited<ReturnType<Harness['call']>> | undefined
  for (let sent = 0; sent < count; sent += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - sent) }, () =>
        h.call('PUT', path, { body: { value: 1 }, headers }),
      ),
    )
    for (const res of batch) {
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      if (res.status === 429) limited ??= res
    }
  }
  return { statuses, limited }
}

const count = (lines: Record<string, unknown>[], msg: string): number =>
  lines.filter((line) => line.msg === msg).length

describe('unauthenticated floods', () => {
  it('answers 429 to most of 1000 bad-token requests and logs a bounded number of lines', async () => {
    const { logger, lines } = captured()
    const h = await start({
      auth: AUTH,
      logger, // One a second sustained: the bound holds however slowly a loaded machine runs the flood.
      limits: { authFailureBurst: 20, maxAuthFailuresPerSecond: 1 },
    })
    try {
      const started = Date.now()
      const { statuses, limited: res } = await flood(
        h,
        1000,
        bearer('not-a-token-0123456789'),
        '/v1/kv/config/a',
      )
      const seconds = (Date.now() - started) / 1000
      const unauthorized = statuses.get(401) ?? 0
      const limited = statuses.get(429) ?? 0
      assert.equal(unauthorized + limited, 1000, JSON.stringify([...statuses]))
      // The burst, plus what 1/s refills while the flood runs.
      assert.ok(unauthorized <= 20 + Math.ceil(seconds) + 1, `${unauthorized} answered 401`)
      assert.ok(limited >= 900, `${limited} answered 429`)
      const authLines = count(lines, 'auth failed')
      assert.ok(authLines <= Math.ceil(seconds) + 2, `${authLines} "auth failed" lines`)
      assert.ok(count(lines, 'limit hit') <= Math.ceil(seconds) + 2)
      const limitLine = lines.find((line) => line.limit === 'maxAuthFailuresPerSecond')
      assert.ok(limitLine !== undefined, 'no limit hit line for maxAuthFailuresPerSecond')
      // A 429 says how long to wait.
      assert.ok(res !== undefined)
      assert.equal(res.body.error.code, 'RateLimited')
      assert.match(res.body.error.message, /limits\.maxAuthFailuresPerSecond/)
      assert.ok(Number(res.headers.get('retry-after')) >= 1)
      // Probes still answer.
      assert.equal((await h.call('GET', '/livez')).status, 200)
    } finally {
      await h.close()
    }
  })

  it('throttles "forbidden" lines from a valid token flooding a write it may not make', async () => {
    const { logger, lines } = captured()
    const h = await start({ auth: AUTH, logger })
    try {
      const started = Date.now()
      const { statuses } = await flood(h, 500, bearer(READER), '/v1/kv/config/a')
      const seconds = (Date.now() - started) / 1000
      assert.equal(statuses.get(403), 500)
      const forbidden = count(lines, 'forbidden')
      assert.ok(forbidden >= 1 && forbidden <= Math.ceil(seconds) + 2, `${forbidden} lines`)
      const later = lines.filter((line) => line.msg === 'forbidden').at(-1)
      if (forbidden > 1) assert.ok(Number(later?.suppressed) > 0)
    } finally {
      await h.close()
    }
  })

  it('rate-limits bad tokens in WebSocket hellos too', async () => {
    const { logger, lines } = captured()
    const h = await start({
      auth: AUTH,
      logger,
      limits: { authFailureBurst: 5, maxAuthFailuresPerSecond: 1 },
    })
    const sockets: RawWs[] = []
    try {
      const codes: string[] = []
      for (let i = 0; i < 30; i++) {
        const ws = new RawWs(h.url)
        sockets.push(ws)
        codes.push((await ws.hello({ token: 'wrong-token-0123456789' })).error?.code ?? 'none')
      }
      assert.equal(codes.filter((c) => c === 'Unauthorized').length <= 7, true, codes.join())
      assert.ok(codes.filter((c) => c === 'RateLimited').length >= 20, codes.join())
      assert.ok(count(lines, 'auth failed') <= 3)
      // An upgrade with a bad Authorization header from the address is refused with 429.
      const header = new RawWs(h.url, bearer('wrong-token-0123456789'))
      sockets.push(header)
      await header.closedWithin()
      assert.equal(header.refusedStatus, 429)
    } finally {
      for (const socket of sockets) socket.close()
      await h.close()
    }
  })
})
