// Issue 10 item 9: a TTL above 2^31 − 1 ms (~24.8 days) must be scheduled correctly — not fire
// after 1 ms and spin re-arming every millisecond with a TimeoutOverflowWarning each time.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createDataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import { pino } from 'pino'

const DAY = 24 * 60 * 60 * 1000
const FORTY_DAYS = 40 * DAY

/**
 * Runs `body`, then waits `ms`, counting calls of the global setTimeout (every expiry re-arm
 * is one) and TimeoutOverflowWarnings in that window.
 */
async function watchTimers(
  body: () => Promise<void>,
  ms: number,
): Promise<{ timers: number; overflows: number }> {
  let overflows = 0
  const onWarning = (warning: Error): void => {
    if (warning.name === 'TimeoutOverflowWarning') overflows++
  }
  process.on('warning', onWarning)
  await body()
  const original = globalThis.setTimeout
  let timers = 0
  const counting = ((...args: Parameters<typeof setTimeout>) => {
    timers++
    return original(...args)
  }) as typeof setTimeout
  globalThis.setTimeout = counting
  try {
    await new Promise((resolve) => original(resolve, ms))
  } finally {
    globalThis.setTimeout = original
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
    process.off('warning', onWarning)
  }
  return { timers, overflows }
}

describe('TTLs longer than the longest timer', () => {
  it('a record with a ttl of 40 days exists, expires at the right time, and no timer spins', async () => {
    const ds = createDataspace()
    try {
      const proc = ds.process('long')
      let expiresAt = 0
      let before = 0
      const seen = await watchTimers(async () => {
        before = Date.now()
        const record = await proc.assert('ttl.long', 'r', { v: 1 }, { ttl: FORTY_DAYS })
        expiresAt = record.expiresAt ?? 0
      }, 200)
      assert.ok(expiresAt >= before + FORTY_DAYS && expiresAt <= Date.now() + FORTY_DAYS)
      assert.deepEqual((await ds.get('ttl.long', 'r'))?.data, { v: 1 })
      assert.equal(seen.overflows, 0, 'TimeoutOverflowWarning emitted')
      assert.ok(seen.timers <= 2, `the expiry timer was re-armed ${seen.timers} times in 200 ms`)
    } finally {
      await ds.close()
    }
  })

  it('a KV key with a ttl of 40 days expires after 40 days, not before (mock timers)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 })
    const ds = createDataspace()
    try {
      const kv = ds.kv('long')
      await kv.put('k', 1, { ttl: FORTY_DAYS })
      const proc = ds.process('p')
      await proc.assert('ttl.long', 'r', {}, { ttl: FORTY_DAYS })
      t.mock.timers.tick(39 * DAY)
      assert.equal((await kv.get('k'))?.value, 1)
      assert.ok((await ds.get('ttl.long', 'r')) !== undefined)
      t.mock.timers.tick(DAY + 1)
      assert.equal(await kv.get('k'), undefined)
      assert.equal(await ds.get('ttl.long', 'r'), undefined)
    } finally {
      await ds.close()
    }
  })

  it('a session lease of 40 days (a server allowing it) arms no spinning timer', async () => {
    const ds = createDataspace()
    const server = await createServer({
      ds,
      port: 0,
      logger: pino({ level: 'silent' }),
      limits: { maxSessionTtl: 50 * DAY },
    })
    try {
      const seen = await watchTimers(async () => {
        const res = await fetch(`${server.url}/v1/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'long', ttl: FORTY_DAYS }),
        })
        assert.equal(res.status, 201)
        await res.arrayBuffer()
      }, 200)
      assert.equal(seen.overflows, 0, 'TimeoutOverflowWarning emitted')
      assert.ok(seen.timers <= 2, `a lease timer was re-armed ${seen.timers} times in 200 ms`)
      assert.equal(server.stats.sessions, 1)
    } finally {
      await server.close()
      await ds.close()
    }
  })
})
