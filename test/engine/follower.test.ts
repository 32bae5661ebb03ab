// A follower (docs/cluster.md, "Followers"): an engine opened on a store another server writes,
// which applies the writer's feed in revision order and refuses writes. The store here is an
// in-memory stand-in for one PostgreSQL schema (shared-store.ts); the PostgreSQL backend's own
// side is tested in test/backends/postgres-follower.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openDataspace } from '../../src/index.js'
import type { Dataspace, WatchEvent } from '../../src/index.js'
import { eventsUntil } from './helpers.js'
import { SharedStore } from './shared-store.js'

async function pair(
  store = new SharedStore(),
  options: { followPollMs?: number } = {},
): Promise<{ store: SharedStore; writer: Dataspace; follower: Dataspace }> {
  const writer = await openDataspace({ backend: store.writer() })
  const follower = await openDataspace({ backend: store.follower(), ...options })
  return { store, writer, follower }
}

/** An event as a comparable row: what a watcher acts on. */
function row(event: WatchEvent): unknown {
  if (event.type === 'asserted') {
    return ['asserted', event.record.id, event.record.data, event.revision]
  }
  if (event.type === 'retracted') {
    return ['retracted', event.record.id, event.reason, event.revision]
  }
  return [event.type]
}

describe('follower', () => {
  it('starts from the stored state and applies the writer’s commits as they come', async () => {
    const store = new SharedStore()
    const writer = await openDataspace({ backend: store.writer() })
    await writer.process('w').assert('task', 'old', { n: 0 })
    const follower = await openDataspace({ backend: store.follower() })
    assert.equal((await follower.get('task', 'old'))?.data?.['n' as never], 0)
    const watch = follower.watch('task')
    await writer.process('w').assert('task', 't1', { n: 1 })
    const events = await eventsUntil(watch, writer.revision)
    assert.deepEqual(events.map(row), [['asserted', 't1', { n: 1 }, writer.revision]])
    assert.equal(follower.revision, writer.revision)
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('shows every watcher the same events, reasons included, as the writer’s', async () => {
    const { writer, follower } = await pair()
    const mine = writer.watch('task')
    const theirs = follower.watch('task')
    const owner = writer.process('owner')
    await owner.assert('task', 'a', { n: 1 })
    await owner.assert('task', 'b', { n: 2 })
    await owner.assert('task', 'a', { n: 3 })
    await owner.retract('task', 'b')
    await writer.process('other').assert('task', 'ttl', { n: 4 }, { ttl: 20 })
    // The writer expires it (reason `expired`); the follower only learns it from the feed.
    await new Promise((resolve) => setTimeout(resolve, 60))
    await writer.list('task')
    await owner.exit()
    const head = writer.revision
    const expected = (await eventsUntil(mine, head)).map(row)
    assert.deepEqual((await eventsUntil(theirs, head)).map(row), expected)
    const reasons = expected.filter((r) => (r as string[])[0] === 'retracted')
    assert.deepEqual(
      reasons.map((r) => (r as string[])[2]),
      ['retract', 'expired', 'owner-exit'],
    )
    assert.deepEqual(
      (await follower.list('task')).items.map((r) => r.id),
      (await writer.list('task')).items.map((r) => r.id),
    )
    await Promise.all([mine.return(), theirs.return()])
    await Promise.all([writer.close(), follower.close()])
  })

  it('hands watchers frozen records, so that none can change the replica', async () => {
    const { writer, follower } = await pair()
    const watch = follower.watch('task')
    await writer.process('w').assert('task', 'f', { nested: { n: 1 } })
    const [event] = await eventsUntil(watch, writer.revision)
    assert.ok(event?.type === 'asserted')
    assert.ok(Object.isFrozen(event.record) && Object.isFrozen(event.record.data))
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('refuses writes and declarations with Unavailable naming why', async () => {
    const { writer, follower } = await pair()
    const proc = follower.process('p')
    await assert.rejects(proc.assert('task', 't', {}), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'Unavailable')
      assert.match(error.message, /follow/)
      return true
    })
    await assert.rejects(follower.kv('cfg').put('k', 1), { code: 'Unavailable' })
    await assert.rejects(follower.defineKind('x', { fields: ['a'] }), { code: 'Unavailable' })
    // A process that owns nothing exits cleanly; nothing was written.
    await proc.exit()
    assert.equal(follower.revision, writer.revision)
    await Promise.all([writer.close(), follower.close()])
  })

  it('refuses writes that would change nothing too: the wrong node is never "no work"', async () => {
    const { writer, follower } = await pair()
    await writer.process('w').assert('task', 'held', { n: 1 })
    await waitFor(() => follower.revision === writer.revision)
    const proc = follower.process('p')
    const refused = { code: 'Unavailable' }
    await assert.rejects(proc.claim('empty', { patch: { taken: true } }), refused)
    await assert.rejects(proc.retract('task', 'missing'), refused)
    await assert.rejects(proc.assert('task', 'held', {}, { ifRevision: 99 }), refused)
    await assert.rejects(follower.kv('cfg').delete('missing'), refused)
    await assert.rejects(follower.names.register(proc, 'svc'), refused)
    await proc.exit()
    await Promise.all([writer.close(), follower.close()])
  })

  it('accepts a declaration that matches the writer’s, and refuses one that changes it', async () => {
    const { store, writer, follower } = await pair()
    await writer.defineKind('svc', { fields: ['port', 'host'], indexes: ['port'] })
    // A follower opened after the declaration is stored loads it.
    await waitFor(() => store.kinds.has('svc'))
    const late = await openDataspace({ backend: store.follower() })
    await late.defineKind('svc', { fields: ['host', 'port'], indexes: ['port'] })
    await assert.rejects(late.defineKind('svc', { fields: ['port'] }), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'Unavailable')
      assert.match(error.message, /declaring svc this way would change/)
      return true
    })
    // Bad input is the same InvalidArgument as on the writer, not a refusal.
    await assert.rejects(late.defineKind('svc', { fields: 'port' as never }), {
      code: 'InvalidArgument',
    })
    await assert.rejects(late.defineKind('svc', { fields: ['host', 'port'], indexes: ['host'] }), {
      code: 'Unavailable',
    })
    await Promise.all([writer.close(), follower.close(), late.close()])
  })

  it('names its pids apart from the writer’s', async () => {
    const { writer, follower } = await pair()
    assert.equal(writer.node, 'local')
    assert.match(follower.node, /^follower-[0-9a-f]{8}$/)
    await Promise.all([writer.close(), follower.close()])
  })

  it('catches up by polling when a doorbell is lost', async () => {
    const store = new SharedStore()
    const { writer, follower } = await pair(store, { followPollMs: 20 })
    store.muted = true
    const watch = follower.watch('task')
    await writer.process('w').assert('task', 'quiet', {})
    const events = await eventsUntil(watch, writer.revision)
    assert.deepEqual(events.map(row), [['asserted', 'quiet', {}, writer.revision]])
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('is woken by the doorbell, not the poll', async () => {
    // The poll is an hour: only a ring can deliver the commit within the test.
    const { writer, follower } = await pair(new SharedStore(), { followPollMs: 3_600_000 })
    const watch = follower.watch('task')
    await writer.process('w').assert('task', 'rung', {})
    assert.deepEqual((await eventsUntil(watch, writer.revision)).map(row), [
      ['asserted', 'rung', {}, writer.revision],
    ])
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('learns kinds declared after it started, so their declared fields select', async () => {
    const { writer, follower } = await pair()
    await writer.defineKind('svc', { fields: ['port'], indexes: ['port'] })
    await writer.process('w').assert('svc', 's1', { port: 80 })
    const watch = follower.watch('task')
    await writer.process('w').assert('task', 'marker', {})
    await eventsUntil(watch, writer.revision)
    const page = await follower.list('svc', { fields: 'port=80' })
    assert.deepEqual(
      page.items.map((r) => r.id),
      ['s1'],
    )
    await assert.rejects(follower.list('svc', { fields: 'nope=1' }), { code: 'InvalidSelector' })
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('reports a failing feed in backendHealth, and recovers', async () => {
    const store = new SharedStore()
    const { writer, follower } = await pair(store, { followPollMs: 10 })
    store.failing = new Error('connection refused')
    await writer.process('w').assert('task', 'x', {})
    await waitFor(() => follower.backendHealth?.ok === false)
    const health = follower.backendHealth
    assert.ok(health !== undefined && !health.ok && /connection refused/.test(health.error))
    store.failing = undefined
    await waitFor(
      () => follower.backendHealth?.ok === true && follower.revision === writer.revision,
    )
    await Promise.all([writer.close(), follower.close()])
  })

  it('starts over from a snapshot when the feed was trimmed past it: reset, never a gap', async () => {
    const store = new SharedStore()
    const { writer, follower } = await pair(store, { followPollMs: 10 })
    const w = writer.process('w')
    await w.assert('task', 'a', { n: 1 })
    await waitFor(() => follower.revision === writer.revision)
    const watch = follower.watch('task')
    assert.equal((await watch.next()).value?.type, 'snapshot')
    const observed: string[] = []
    const observation = follower.observe('task', {}, (events) => {
      for (const event of events) observed.push(row(event) as never)
    })
    // The follower cannot read while the writer moves on and the feed is trimmed past it.
    store.muted = true
    store.failing = new Error('paused')
    await w.retract('task', 'a')
    await w.assert('task', 'b', { n: 2 })
    await w.assert('task', 'c', { n: 3 })
    store.trim(writer.revision)
    store.failing = undefined
    const reset = await watch.next()
    assert.deepEqual(reset.value, { type: 'reset', reason: 'history-gone' })
    const snapshot = await watch.next()
    assert.equal(snapshot.value?.type, 'snapshot')
    assert.deepEqual(
      snapshot.value?.type === 'snapshot' && snapshot.value.records.map((r) => r.id),
      ['b', 'c'],
    )
    assert.equal(follower.revision, writer.revision)
    // Observers cannot start over: they are told the net difference, at the snapshot's revision.
    const head = writer.revision
    assert.deepEqual(
      observed.sort(),
      [
        ['asserted', 'b', { n: 2 }, head],
        ['asserted', 'c', { n: 3 }, head],
        ['retracted', 'a', 'retract', head],
      ]
        .map((r) => r as never)
        .sort(),
    )
    // And it follows on from there.
    await w.assert('task', 'd', { n: 4 })
    const next = await watch.next()
    assert.deepEqual(row(next.value as WatchEvent), ['asserted', 'd', { n: 4 }, writer.revision])
    assert.equal(follower.backendHealth?.ok, true)
    observation.close()
    await watch.return()
    await Promise.all([writer.close(), follower.close()])
  })

  it('closes the store when it cannot start following, so nothing is left open', async () => {
    const store = new SharedStore()
    let closed = 0
    const backend = store.follower()
    const failing = {
      ...backend,
      follower: {
        ...backend.follower!,
        listen: () => Promise.reject(new Error('LISTEN refused')),
      },
      close: () => {
        closed++
        return Promise.resolve()
      },
    }
    await assert.rejects(openDataspace({ backend: failing }), /LISTEN refused/)
    assert.equal(closed, 1)
  })

  it('starts once: ready() again opens no second listener, and close leaves none', async () => {
    const store = new SharedStore()
    const { writer, follower } = await pair(store)
    await follower.ready()
    await follower.ready()
    assert.equal(store.listeners, 1)
    await follower.close()
    assert.equal(store.listeners, 0)
    await writer.close()
  })

  it('checks followPollMs against the longest timer', async () => {
    const store = new SharedStore()
    await assert.rejects(
      openDataspace({ backend: store.follower(), followPollMs: 2 ** 31 }),
      /followPollMs must be at most 2147483647/,
    )
    await assert.rejects(openDataspace({ backend: store.follower(), followPollMs: 0 }), {
      code: 'InvalidArgument',
    })
  })

  it('stops listening when it closes', async () => {
    const store = new SharedStore()
    const { writer, follower } = await pair(store)
    assert.equal(store.listeners, 1)
    await follower.close()
    assert.equal(store.listeners, 0)
    await writer.close()
  })
})

async function waitFor(condition: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
