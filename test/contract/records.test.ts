import assert from 'node:assert/strict'
import { it } from 'node:test'
import { Conflict, NotFound, NotOwner } from '../../src/index.js'
import { contract, drained, next } from './harness.js'

contract('records', (c) => {
  it('asserts, reads and lists a record', async () => {
    const ds = await c.open()
    const proc = ds.process('worker')
    const record = await proc.assert('api.route', 'a', { path: '/a' }, { labels: { tier: 'web' } })
    assert.equal(record.owner, proc.id)
    assert.deepEqual((await ds.get('api.route', 'a'))?.data, { path: '/a' })
    const { items } = await ds.list('api.route', { labels: 'tier=web' })
    assert.deepEqual(
      items.map((r) => r.id),
      ['a'],
    )
  })

  it('refuses a write to another process record with NotOwner', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    await a.assert('k', 'x', 1)
    await assert.rejects(b.assert('k', 'x', 2), (e) => e instanceof NotOwner && e.owner === a.id)
    await assert.rejects(b.retract('k', 'nope'), NotFound)
    await assert.rejects(a.assert('k', 'x', 3, { ifRevision: 999 }), Conflict)
  })

  it('retracts everything a process owned when it exits, and watchers see owner-exit', async () => {
    const ds = await c.open()
    const watcher = await c.peer(ds)
    const proc = ds.process('worker')
    const watch = watcher.watch('k')
    assert.equal((await next(watch)).type, 'snapshot')
    await proc.assert('k', '1', 1)
    await proc.assert('k', '2', 2)
    await proc.exit()
    const events = [await next(watch), await next(watch), await next(watch), await next(watch)]
    const retracted = events.filter((e) => e.type === 'retracted')
    assert.equal(retracted.length, 2)
    for (const e of retracted) assert.equal(e.type === 'retracted' && e.reason, 'owner-exit')
    assert.deepEqual(await drained(c, ds, watch), [])
    assert.equal((await ds.list('k')).items.length, 0)
  })
})
