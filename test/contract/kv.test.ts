// KV buckets (CAS, TTL, watch): against the engine and against a network client.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { Conflict, Forbidden, InvalidArgument, TooLarge } from '../../src/index.js'
import type { KvEvent, KvWatch } from '../../src/index.js'
import { contract, drained, next } from './harness.js'

/** The next `count` events, leaving the watch open. */
async function take(watch: KvWatch, count: number, ms?: number): Promise<KvEvent[]> {
  const events: KvEvent[] = []
  while (events.length < count) events.push(await next(watch, ms))
  return events
}

const show = (e: KvEvent): string =>
  e.type === 'reset'
    ? 'reset'
    : `${e.type}:${e.key}:${e.isUpdate}${e.type === 'delete' ? `:${e.reason}` : ''}`

contract('kv', (c) => {
  it('get / put / delete with revisions; values are any JSON', async () => {
    const ds = await c.open()
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
  })

  it('refuses values that are not JSON instead of converting them', async () => {
    const ds = await c.open()
    const kv = ds.kv('config')
    for (const value of [NaN, Infinity, { at: new Date(0) }, [1, () => 2]]) {
      await assert.rejects(kv.put('k', value as never), InvalidArgument)
    }
    assert.equal(await kv.get('k'), undefined)
  })

  it('CAS: ifRevision 0 creates only; a mismatch is Conflict carrying the current revision', async () => {
    const ds = await c.open()
    const kv = ds.kv('cas')
    await assert.rejects(kv.put('k', 1, { ifRevision: 5 }), (err: unknown) => {
      assert.ok(err instanceof Conflict)
      assert.equal(err.currentRevision, 0)
      return true
    })
    const first = await kv.put('k', 1, { ifRevision: 0 })
    await assert.rejects(kv.put('k', 2, { ifRevision: 0 }), (err: unknown) => {
      assert.ok(err instanceof Conflict)
      assert.equal(err.currentRevision, first.revision)
      return true
    })
    const second = await kv.put('k', 2, { ifRevision: first.revision })
    await assert.rejects(kv.delete('k', { ifRevision: first.revision }), Conflict)
    assert.equal(await kv.delete('k', { ifRevision: second.revision }), true)
  })

  it('CAS races between processes: every increment lands exactly once', async () => {
    const ds = await c.open()
    const peer = await c.peer(ds)
    await ds.kv('counters').put('n', 0)
    const increment = async (kv: ReturnType<typeof ds.kv>): Promise<number> => {
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
    // Half the workers on each handle: remotely, two clients racing through the server.
    const workers = Array.from({ length: 8 }, (_, i) => {
      const on = i % 2 === 0 ? ds : peer
      return on.spawn(`inc-${i}`, async () => {
        for (let j = 0; j < 25; j++) await increment(on.kv('counters'))
      })
    })
    const reasons = await Promise.all(workers.map((w) => w.exited))
    assert.deepEqual(new Set(reasons), new Set(['normal']))
    assert.equal((await ds.kv('counters').get('n'))?.value, 200)
  })

  it('owned keys vanish with their process; durable keys stay', async () => {
    const ds = await c.open()
    const kv = ds.kv('sessions')
    const p = ds.process('p')
    await kv.put('owned', 'x', { owner: p })
    await kv.put('durable', 'y')
    assert.equal((await kv.get('owned'))?.owner, p.id)
    const watch = kv.watch()
    assert.deepEqual((await take(watch, 2)).map(show).sort(), [
      'put:durable:false',
      'put:owned:false',
    ])
    await p.exit()
    assert.equal(await kv.get('owned'), undefined)
    assert.equal((await kv.get('durable'))?.value, 'y')
    assert.deepEqual((await drained(c, ds, watch)).map(show), ['delete:owned:true:owner-exit'])
  })

  it("a key owned by another client's process: in process any live owner; over the network, Forbidden", async () => {
    const ds = await c.open()
    const other = await c.peer(ds)
    const theirs = other.process('theirs')
    await other.kv('sessions').put('mine', 0, { owner: theirs })
    const kv = ds.kv('sessions')
    if (c.target === 'local') {
      assert.equal((await kv.put('k', 1, { owner: theirs })).owner, theirs.id)
    } else {
      // docs/protocol.md: every pid must be the session's process or one of its children.
      await assert.rejects(kv.put('k', 1, { owner: theirs }), Forbidden)
      assert.equal(await kv.get('k'), undefined)
    }
  })

  it('a put without owner makes an owned key durable again', async () => {
    const ds = await c.open()
    const kv = ds.kv('sessions')
    const p = ds.process('p')
    await kv.put('k', 1, { owner: p })
    await kv.put('k', 2)
    assert.equal((await kv.get('k'))?.owner, null)
    await p.exit()
    assert.equal((await kv.get('k'))?.value, 2)
  })

  it('TTL keys expire with reason expired (real timers, short TTL)', async () => {
    const ds = await c.open()
    const kv = ds.kv('cache')
    const watch = kv.watch()
    await kv.put('short', 1, { ttl: 200 })
    await kv.put('long', 2, { ttl: 60_000 })
    assert.equal(typeof (await kv.get('short'))?.expiresAt, 'number')
    // No timing assertion: wait (generously) for the expiry event, then check the state.
    const events = await take(watch, 3, 10_000)
    assert.deepEqual(events.map(show), [
      'put:short:true',
      'put:long:true',
      'delete:short:true:expired',
    ])
    assert.equal(await kv.get('short'), undefined)
    assert.equal((await kv.get('long'))?.value, 2)
  })

  it('rejects values over the default maximum size (1 MiB) with TooLarge', async () => {
    const ds = await c.open()
    const kv = ds.kv('big')
    await assert.rejects(kv.put('k', 'x'.repeat(1024 * 1024 + 1)), TooLarge)
    assert.equal(await kv.get('k'), undefined)
    await kv.put('k', 'x'.repeat(1024))
    assert.equal(((await kv.get('k'))?.value as string).length, 1024)
  })

  it('scan by prefix and glob, with pagination', async () => {
    const ds = await c.open()
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
    assert.equal(typeof page.continue, 'string')
    const rest = await kv.scan({ prefix: 'app/', limit: 2, continue: page.continue as string })
    assert.deepEqual(
      rest.entries.map((e) => e.key),
      ['app/c'],
    )
    assert.equal(rest.continue, undefined)
    await assert.rejects(kv.scan({ prefix: 'a', glob: 'b' }), InvalidArgument)
    // A prefix that is not a string is refused as such (ws-fuzz: null answered Internal).
    for (const prefix of [null, 5, {}]) {
      await assert.rejects(kv.scan({ prefix: prefix as never }), InvalidArgument)
    }
  })

  it('watch replays then goes live, marking which is which; resumes from a revision', async () => {
    const ds = await c.open()
    const kv = ds.kv('w')
    const old = await kv.put('a', 1)
    await kv.put('b', 2)
    const watch = kv.watch({ prefix: 'a' })
    assert.deepEqual((await take(watch, 1)).map(show), ['put:a:false'])
    await kv.put('a', 3)
    await kv.delete('a')
    assert.deepEqual((await take(watch, 2)).map(show), ['put:a:true', 'delete:a:true:deleted'])
    const resumed = kv.watch({ fromRevision: old.revision })
    assert.deepEqual((await take(resumed, 3)).map(show), [
      'put:b:false',
      'put:a:false',
      'delete:a:false:deleted',
    ])
    await kv.put('c', 4)
    assert.deepEqual((await take(resumed, 1)).map(show), ['put:c:true'])
    assert.deepEqual(await drained(c, ds, watch), [])
  })

  it('a watch sees the writes of another client of the same dataspace', async () => {
    const ds = await c.open()
    const watcher = await c.peer(ds)
    const watch = watcher.kv('shared').watch({ glob: 'job/*' })
    await c.settle(watcher) // the watch is open before the first write
    const kv = ds.kv('shared')
    await kv.put('job/1', { state: 'new' })
    await kv.put('other', 1)
    await kv.put('job/1', { state: 'done' })
    await kv.delete('job/1')
    const events = await take(watch, 3)
    assert.deepEqual(events.map(show), [
      'put:job/1:true',
      'put:job/1:true',
      'delete:job/1:true:deleted',
    ])
    const last = events[1]
    assert.deepEqual(last?.type === 'put' && last.value, { state: 'done' })
  })
})
