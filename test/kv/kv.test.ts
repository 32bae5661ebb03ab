// KV tests that need the engine itself: fake timers, and bucket options that only
// `createDataspace().kv()` takes. Everything else runs in test/contract/kv.test.ts, against the
// engine and a network client.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, InvalidArgument, TooLarge } from '../../src/index.js'
import type { KvEvent, KvWatch } from '../../src/index.js'

/** The next `count` events, leaving the watch open. */
async function take(watch: KvWatch, count: number): Promise<KvEvent[]> {
  const events: KvEvent[] = []
  while (events.length < count) {
    const next = await watch.next()
    if (next.done === true) throw new Error(`watch ended after ${events.length} events`)
    events.push(next.value)
  }
  return events
}

describe('kv', () => {
  it('TTL keys expire with reason expired (fake timers)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const ds = createDataspace()
    const kv = ds.kv('cache')
    const watch = kv.watch()
    await kv.put('short', 1, { ttl: 100 })
    await kv.put('long', 2, { ttl: 1000 })
    t.mock.timers.tick(150)
    assert.equal(await kv.get('short'), undefined)
    assert.equal((await kv.get('long'))?.value, 2)
    const events = await take(watch, 3)
    assert.deepEqual(
      events.map((e) =>
        e.type === 'delete'
          ? `delete:${e.key}:${e.reason}`
          : `${e.type}:${'key' in e ? e.key : ''}`,
      ),
      ['put:short', 'put:long', 'delete:short:expired'],
    )
    await ds.close()
  })

  it('a bucket maximum value size (an engine-only option) is enforced with TooLarge', async () => {
    const ds = createDataspace()
    await assert.rejects(ds.kv('small', { maxValueSize: 10 }).put('k', 'x'.repeat(20)), TooLarge)
    await ds.kv('small', { maxValueSize: 10 }).put('k', 'x')
    await ds.close()
  })

  it('a watch prefix that is not a string is InvalidArgument', () => {
    const kv = createDataspace().kv('p')
    for (const prefix of [null, 5, {}]) {
      assert.throws(() => kv.watch({ prefix: prefix as never }), InvalidArgument)
    }
  })
})
