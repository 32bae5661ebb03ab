import assert from 'node:assert/strict'
import { it } from 'node:test'
import { InvalidArgument, WATCH_KIND } from '../../src/index.js'
import type { WatchEvent } from '../../src/index.js'
import { applyEvents } from '../engine/helpers.js'
import { contract, drained, expectWatchError, next } from './harness.js'

const summary = (e: WatchEvent): string =>
  e.type === 'asserted' || e.type === 'retracted' ? `${e.type}:${e.record.id}` : e.type

contract('watch', (c) => {
  it('resumes from a revision with exactly the changes after it', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const { revision: seen } = await p.assert('k', 'a', { v: 1 })
    await p.assert('k', 'b', { v: 1 })
    await p.retract('k', 'a')
    const watch = ds.watch('k', { fromRevision: seen })
    assert.deepEqual(
      [summary(await next(watch)), summary(await next(watch))],
      ['asserted:b', 'retracted:a'],
    )
    assert.deepEqual(await drained(c, ds, watch), [])
    await p.assert('k', 'c', {})
    assert.equal(summary(await next(watch)), 'asserted:c')
  })

  it('starts with reset + snapshot when the history no longer reaches back', async () => {
    const ds = await c.open({ historySize: 3 })
    const p = ds.process('p')
    for (let i = 0; i < 10; i++) await p.assert('k', `r${i}`, {})
    const watch = ds.watch('k', { fromRevision: 1 })
    const reset = await next(watch)
    const snapshot = await next(watch)
    assert.equal(reset.type === 'reset' && reset.reason, 'history-gone')
    assert.equal(snapshot.type === 'snapshot' && snapshot.records.length, 10)
    assert.deepEqual(await drained(c, ds, watch), [])
    await expectWatchError(c, () => ds.watch('k', { fromRevision: -1 }), InvalidArgument)
  })

  it('a slow watcher gets reset + a fresh snapshot, never a silent gap', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const watch = ds.watch('k', { bufferSize: 4 })
    for (let i = 0; i < 10; i++) await p.assert('k', `r${i}`, { i })
    const listed = (await ds.list('k')).items.map((r) => r.id)
    // Read until the view has caught up: a reset is followed by a snapshot of the current state.
    const events: WatchEvent[] = []
    const view = new Map<string, unknown>()
    while (events.length === 0 || [...view.keys()].sort().join() !== listed.join()) {
      const event = await next(watch)
      events.push(event)
      applyEvents(view, [event])
    }
    events.push(...(await drained(c, ds, watch)))
    const types = events.map((e) => e.type)
    assert.ok(types.includes('reset'), `expected a reset in ${types.join(',')}`)
    assert.equal(events[types.indexOf('reset') + 1]?.type, 'snapshot')
    assert.deepEqual([...applyEvents(new Map(), events).keys()].sort(), listed)
  })

  it('stops delivering after close, abort, return and async dispose', async () => {
    const ds = await c.open()
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
    const already = ds.watch('k', { signal: AbortSignal.abort() })
    assert.equal(await already.closed, 'aborted')
    // Every open watch is a $watch record: none is left open.
    await c.settle(ds)
    assert.deepEqual((await ds.list(WATCH_KIND)).items, [])
  })

  it('for await ends when the watch is closed', async () => {
    const ds = await c.open()
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
  })

  it('tells entering and leaving a selection apart from creation and retraction', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const watch = ds.watch('k', { labels: 'tier=web', snapshot: false })
    await p.assert('k', 'a', {}, { labels: { tier: 'db' } })
    await p.assert('k', 'a', {}, { labels: { tier: 'web' } })
    await p.assert('k', 'a', {}, { labels: { tier: 'db' } })
    const events = await drained(c, ds, watch)
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
  })

  it('publishes open watches as $watch records so producers can follow demand', async () => {
    const ds = await c.open()
    const demand = ds.watch(WATCH_KIND, { fields: 'kind=api.route' })
    const first = await next(demand)
    assert.equal(first.type === 'snapshot' && first.records.length, 0)
    const interest = ds.watch('api.route', { id: 'health-*', labels: 'tier=web' })
    const opened = await next(demand)
    assert.equal(opened.type, 'asserted')
    assert.deepEqual(opened.type === 'asserted' && opened.record.data, {
      kind: 'api.route',
      id: 'health-*',
      labels: 'tier=web',
    })
    assert.equal((await ds.list(WATCH_KIND, { fields: 'kind=api.route' })).items.length, 1)
    interest.close()
    const closed = await next(demand)
    assert.equal(closed.type === 'retracted' && closed.reason, 'retract')
    await assert.rejects(ds.process('p').assert(WATCH_KIND, 'fake', {}), InvalidArgument)
  })
})
