import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace } from '../../src/index.js'
import { drain, nextEvent } from './helpers.js'

describe('watch', () => {
  // The reset and resnapshot themselves are in test/contract/watch.test.ts.
  it('counts the resets of a slow watcher in stats', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { bufferSize: 4 })
    for (let i = 0; i < 10; i++) await p.assert('k', `r${i}`, { i })
    const types = (await drain(watch)).map((e) => e.type)
    assert.ok(types.includes('reset'), `expected a reset in ${types.join(',')}`)
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
})
