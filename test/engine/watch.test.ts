import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, InvalidArgument, WATCH_KIND } from '../../src/index.js'
import { applyEvents, drain, nextEvent } from './helpers.js'

describe('watch', () => {
  it('resumes from a revision with exactly the changes after it', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    await p.assert('k', 'a', { v: 1 })
    const seen = ds.revision
    await p.assert('k', 'b', { v: 1 })
    await p.retract('k', 'a')
    const watch = ds.watch('k', { fromRevision: seen })
    const events = await drain(watch)
    assert.deepEqual(
      events.map((e) =>
        e.type === 'asserted' || e.type === 'retracted' ? `${e.type}:${e.record.id}` : e.type,
      ),
      ['asserted:b', 'retracted:a'],
    )
    await p.assert('k', 'c', {})
    assert.equal((await nextEvent(watch)).type, 'asserted')
    await ds.close()
  })

  it('starts with reset + snapshot when the history no longer reaches back', async () => {
    const ds = createDataspace({ historySize: 3 })
    const p = ds.process('p')
    for (let i = 0; i < 10; i++) await p.assert('k', `r${i}`, {})
    const watch = ds.watch('k', { fromRevision: 1 })
    const events = await drain(watch)
    assert.deepEqual(
      events.map((e) => e.type),
      ['reset', 'snapshot'],
    )
    assert.equal(events[0]?.type === 'reset' && events[0].reason, 'history-gone')
    assert.equal(events[1]?.type === 'snapshot' && events[1].records.length, 10)
    assert.throws(() => ds.watch('k', { fromRevision: -1 }), InvalidArgument)
    await ds.close()
  })

  it('a slow watcher gets reset + a fresh snapshot, never a silent gap', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { bufferSize: 4 })
    for (let i = 0; i < 10; i++) await p.assert('k', `r${i}`, { i })
    const events = await drain(watch)
    const types = events.map((e) => e.type)
    assert.ok(types.includes('reset'), `expected a reset in ${types.join(',')}`)
    const view = applyEvents(new Map(), events)
    assert.deepEqual(
      [...view.keys()].sort(),
      (await ds.list('k')).items.map((r) => r.id),
    )
    assert.ok(ds.stats.watchResets >= 1)
    await ds.close()
  })

  it('counts messages dropped for a full watcher and reports them on the next event', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { id: 'r', bufferSize: 2, snapshot: false })
    for (let i = 0; i < 5; i++) await p.send({ kind: 'k', id: 'r' }, i)
    assert.equal(ds.stats.droppedWatchMessages, 3)
    await drain(watch)
    await p.assert('k', 'r', {})
    const event = await nextEvent(watch)
    assert.equal(event.type, 'asserted')
    assert.equal(event.dropped, 3)
    await ds.close()
  })

  it('delivers one commit to a watcher as one batch of events', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const batches: number[] = []
    const watch = ds.watch('k', { snapshot: false })
    const original = watch as unknown as { onEvents(events: unknown[]): void }
    const onEvents = original.onEvents.bind(watch)
    original.onEvents = (events) => {
      batches.push(events.length)
      onEvents(events)
    }
    await p.transact({
      then: [
        { op: 'assert', kind: 'k', id: 'a', data: {} },
        { op: 'assert', kind: 'k', id: 'b', data: {} },
        { op: 'assert', kind: 'k', id: 'c', data: {} },
      ],
    })
    assert.deepEqual(batches, [3])
    await ds.close()
  })

  it('stops delivering after close, abort, return and async dispose', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const controller = new AbortController()
    const closed = ds.watch('k')
    const aborted = ds.watch('k', { signal: controller.signal })
    const returned = ds.watch('k')
    closed.close()
    controller.abort()
    await returned.return()
    {
      await using disposed = ds.watch('k')
      void disposed
    }
    await p.assert('k', 'x', {})
    assert.equal(await closed.closed, 'closed')
    assert.equal(await aborted.closed, 'aborted')
    assert.equal((await closed.next()).done, true)
    assert.equal((await returned.next()).done, true)
    assert.equal(ds.stats.watchers, 0)
    const already = ds.watch('k', { signal: AbortSignal.abort() })
    assert.equal(await already.closed, 'aborted')
    await ds.close()
  })

  it('for await ends when the watch is closed', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch<{ n: number }>('k', { snapshot: false })
    const seen: number[] = []
    const consumer = (async () => {
      for await (const event of watch) {
        if (event.type === 'asserted') seen.push(event.record.data.n)
        if (seen.length === 2) break
      }
    })()
    await p.assert('k', 'a', { n: 1 })
    await p.assert('k', 'b', { n: 2 })
    await consumer
    assert.deepEqual(seen, [1, 2])
    assert.equal(await watch.closed, 'closed')
    await ds.close()
  })

  it('tells entering and leaving a selection apart from creation and retraction', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { labels: 'tier=web', snapshot: false })
    await p.assert('k', 'a', {}, { labels: { tier: 'db' } })
    await p.assert('k', 'a', {}, { labels: { tier: 'web' } })
    await p.assert('k', 'a', {}, { labels: { tier: 'db' } })
    const events = await drain(watch)
    assert.deepEqual(
      events.map((e) =>
        e.type === 'retracted'
          ? `retracted:${e.reason}`
          : e.type === 'asserted'
            ? `asserted:${e.previous === undefined}`
            : e.type,
      ),
      ['asserted:true', 'retracted:unmatched'],
    )
    await ds.close()
  })

  it('publishes open watches as $watch records so producers can follow demand', async () => {
    const ds = createDataspace()
    const demand = ds.watch(WATCH_KIND, { fields: 'kind=api.route' })
    const first = await nextEvent(demand)
    assert.equal(first.type === 'snapshot' && first.records.length, 0)
    const interest = ds.watch('api.route', { id: 'health-*', labels: 'tier=web' })
    const opened = await nextEvent(demand)
    assert.equal(opened.type, 'asserted')
    assert.deepEqual(opened.type === 'asserted' && opened.record.data, {
      kind: 'api.route',
      id: 'health-*',
      labels: 'tier=web',
    })
    assert.equal((await ds.list(WATCH_KIND, { fields: 'kind=api.route' })).items.length, 1)
    interest.close()
    const closed = await nextEvent(demand)
    assert.equal(closed.type === 'retracted' && closed.reason, 'retract')
    await assert.rejects(ds.process('p').assert(WATCH_KIND, 'fake', {}), InvalidArgument)
    await ds.close()
  })
})
