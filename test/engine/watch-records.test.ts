// `$watch` records (docs/internals.md): every open watch is one, and it goes when the watch
// does. Watches do not outlive their server, so a store must not keep the records of watches
// that ended with it: a server that closes retracts them, and one that starts retracts what a
// previous run left (it was killed, or predates this rule).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openDataspace, WATCH_KIND } from '../../src/index.js'
import type { Watch } from '../../src/index.js'
import { SharedStore } from './shared-store.js'

describe('$watch records in a durable store', () => {
  it('a closing server retracts the records of its open watches', async () => {
    const store = new SharedStore()
    const ds = await openDataspace({ backend: store.writer() })
    ds.watch('task')
    ds.watch('other')
    await ds.process('p').assert('task', 't', {})
    assert.equal((await ds.list(WATCH_KIND)).items.length, 2)
    await ds.close()
    const left = [...store.records.values()].filter((record) => record.kind === WATCH_KIND)
    assert.deepEqual(left, [])
  })

  it('a consumer that watches again when its watch ends cannot outlive close', async () => {
    // A cluster node: its close takes a last turn after ending the watches.
    const ds = await openDataspace({ backend: new SharedStore().node() })
    const again: unknown[] = []
    const watch = ds.watch('task')
    assert.equal((await watch.next()).value?.type, 'snapshot')
    // The watch ends (the dataspace closes): a consumer that resubscribes at once is told.
    const consumer = watch.next().then(() => {
      try {
        again.push(ds.watch('task'))
      } catch (error) {
        again.push((error as { code?: string }).code)
      }
    })
    await ds.close()
    await consumer
    assert.deepEqual(again, ['Closed'])
  })

  it('a starting server retracts the records a previous run left', async () => {
    const store = new SharedStore()
    const killed = await openDataspace({ backend: store.writer() })
    killed.watch('task')
    await killed.process('p').assert('task', 't', {}, { owner: null })
    // Killed: it never closes. What it stored is what the next run finds.
    const ds = await openDataspace({ backend: store.writer() })
    assert.deepEqual((await ds.list(WATCH_KIND)).items, [])
    assert.deepEqual(
      (await ds.list('task')).items.map((record) => record.id),
      ['t'],
    )
    await ds.close()
  })

  it('a watch opened while watchers are told and closed at once leaves no record', async () => {
    const ds = await openDataspace()
    let opened: Watch | undefined
    ds.observe('task', {}, () => {
      // Inside a dispatch: its `$watch` record is written once the dispatch is over.
      opened ??= ds.watch('other')
    })
    // A system write: its dispatch runs now, and the watch is closed right after it, before
    // the deferred publication ran.
    ds.system((tx) => tx.assert({ kind: 'task', id: 't', data: {} }))
    assert.ok(opened !== undefined)
    await opened.return()
    await new Promise((resolve) => setImmediate(resolve))
    // The observation's own record stays; the closed watch's must not.
    const kinds = (await ds.list(WATCH_KIND)).items.map((record) => record.data)
    assert.deepEqual(kinds, [{ kind: 'task' }])
    await ds.close()
  })

  it('a closing cluster node retracts its watches’ records, and leaves other nodes’', async () => {
    const store = new SharedStore()
    const a = await openDataspace({ backend: store.node(), followPollMs: 20 })
    const b = await openDataspace({ backend: store.node(), followPollMs: 20 })
    a.watch('task')
    const kept = b.watch('task')
    await a.process('p').assert('task', 't', {}, { owner: null })
    await b.process('p').assert('task', 'u', {}, { owner: null })
    await a.close()
    const left = [...store.records.values()].filter((record) => record.kind === WATCH_KIND)
    assert.equal(left.length, 1)
    assert.match(left[0]!.id, new RegExp(`^${b.node}:`))
    await kept.return()
    await b.close()
    assert.deepEqual(
      [...store.records.values()].filter((record) => record.kind === WATCH_KIND),
      [],
    )
  })
})
