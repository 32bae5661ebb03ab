import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Conflict, createDataspace, InvalidArgument, TooLarge } from '../../src/index.js'
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
  it('get / put / delete with revisions; values are any JSON', async () => {
    const ds = createDataspace()
    const kv = ds.kv('config')
    assert.equal(await kv.get('a'), undefined)
    const put = await kv.put('a', { nested: [1, 'two', null] })
    assert.deepEqual(await kv.get('a'), {
      key: 'a',
      value: { nested: [1, 'two', null] },
      revision: put.revision,
      owner: null,
    })
    for (const value of [0, 'text', true, null, [1, 2]]) {
      await kv.put('scalar', value)
      assert.deepEqual((await kv.get('scalar'))?.value, value)
    }
    assert.equal(await kv.delete('a'), true)
    assert.equal(await kv.delete('a'), false)
    assert.equal(await kv.get('a'), undefined)
    assert.throws(() => ds.kv('bad bucket!'), InvalidArgument)
    await ds.close()
  })

  it('CAS: ifRevision 0 creates only; a mismatch is Conflict carrying the current revision', async () => {
    const ds = createDataspace()
    const kv = ds.kv('cas')
    const first = await kv.put('k', 1, { ifRevision: 0 })
    await assert.rejects(kv.put('k', 2, { ifRevision: 0 }), (err: unknown) => {
      assert.ok(err instanceof Conflict)
      assert.equal(err.currentRevision, first.revision)
      return true
    })
    const second = await kv.put('k', 2, { ifRevision: first.revision })
    await assert.rejects(kv.delete('k', { ifRevision: first.revision }), Conflict)
    assert.equal(await kv.delete('k', { ifRevision: second.revision }), true)
    await ds.close()
  })

  it('CAS races between processes: every increment lands exactly once', async () => {
    const ds = createDataspace()
    const kv = ds.kv('counters')
    await kv.put('n', 0)
    const increment = async (): Promise<number> => {
      for (let attempt = 1; ; attempt++) {
        const current = await kv.get('n')
        await new Promise((r) => setImmediate(r)) // let the others interleave
        try {
          await kv.put('n', (current?.value as number) + 1, { ifRevision: current?.revision ?? 0 })
          return attempt
        } catch (error) {
          if (!(error instanceof Conflict)) throw error
        }
      }
    }
    const workers = Array.from({ length: 8 }, (_, i) =>
      ds.spawn(`inc-${i}`, async () => {
        for (let j = 0; j < 25; j++) await increment()
      }),
    )
    await Promise.all(workers.map((w) => w.exited))
    assert.equal((await kv.get('n'))?.value, 200)
    await ds.close()
  })

  it('owned keys vanish with their process; durable keys stay', async () => {
    const ds = createDataspace()
    const kv = ds.kv('sessions')
    const p = ds.process('p')
    await kv.put('owned', 'x', { owner: p })
    await kv.put('durable', 'y')
    assert.equal((await kv.get('owned'))?.owner, p.id)
    await p.exit()
    assert.equal(await kv.get('owned'), undefined)
    assert.equal((await kv.get('durable'))?.value, 'y')
    await ds.close()
  })

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

  it('rejects values over the maximum size with TooLarge', async () => {
    const ds = createDataspace()
    await assert.rejects(ds.kv('big').put('k', 'x'.repeat(1024 * 1024 + 1)), TooLarge)
    await assert.rejects(ds.kv('small', { maxValueSize: 10 }).put('k', 'x'.repeat(20)), TooLarge)
    await ds.kv('small', { maxValueSize: 10 }).put('k', 'x')
    await ds.close()
  })

  it('scan by prefix and glob, with pagination', async () => {
    const ds = createDataspace()
    const kv = ds.kv('scan')
    for (const key of ['app/a', 'app/b', 'app/c', 'apq', 'other', 'lit*x']) await kv.put(key, key)
    assert.deepEqual(
      (await kv.scan({ prefix: 'app/' })).entries.map((e) => e.key),
      ['app/a', 'app/b', 'app/c'],
    )
    assert.deepEqual(
      (await kv.scan({ glob: 'ap?' })).entries.map((e) => e.key),
      ['apq'],
    )
    assert.deepEqual(
      (await kv.scan({ prefix: 'lit*' })).entries.map((e) => e.key),
      ['lit*x'],
    )
    const page = await kv.scan({ prefix: 'app/', limit: 2 })
    assert.equal(page.entries.length, 2)
    const rest = await kv.scan({ prefix: 'app/', limit: 2, continue: page.continue as string })
    assert.deepEqual(
      rest.entries.map((e) => e.key),
      ['app/c'],
    )
    await assert.rejects(kv.scan({ prefix: 'a', glob: 'b' }), InvalidArgument)
    await ds.close()
  })

  it('watch replays then goes live, marking which is which; resumes from a revision', async () => {
    const ds = createDataspace()
    const kv = ds.kv('w')
    const old = await kv.put('a', 1)
    await kv.put('b', 2)
    const watch = kv.watch({ prefix: 'a' })
    await kv.put('a', 3)
    await kv.delete('a')
    const events = await take(watch, 3)
    assert.deepEqual(
      events.map((e) => `${e.type}:${'isUpdate' in e ? e.isUpdate : ''}`),
      ['put:false', 'put:true', 'delete:true'],
    )
    const resumed = kv.watch({ fromRevision: old.revision })
    const replay = await take(resumed, 3)
    assert.deepEqual(
      replay.map(
        (e) => `${e.type}:${'key' in e ? e.key : ''}:${'isUpdate' in e ? e.isUpdate : ''}`,
      ),
      ['put:b:false', 'put:a:false', 'delete:a:false'],
    )
    await kv.put('c', 4)
    const [live] = await take(resumed, 1)
    assert.equal(live?.type === 'put' && live.isUpdate, true)
    await ds.close()
  })
})
