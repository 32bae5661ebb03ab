import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace } from '../../src/index.js'

describe('processes', () => {
  it('names pids <node>/<name>#<n>', async () => {
    const ds = createDataspace({ node: 'n1' })
    const a = ds.process('router')
    const b = ds.process('router')
    assert.equal(a.id, 'n1/router#1')
    assert.equal(b.id, 'n1/router#2')
    assert.equal(a.name, 'router')
    await ds.close()
  })

  it('ownedCount counts what a pid owns over every kind, KV keys included', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const q = ds.process('q')
    assert.equal(ds.ownedCount(p.id), 0)
    await p.assert('a', 'x', {})
    await p.assert('a', 'x', { v: 2 }) // an update adds nothing
    await p.assert('b', 'y', {})
    await q.assert('a', 'z', {})
    await ds.kv('cfg').put('k', 1, { owner: p.id })
    assert.equal(ds.ownedCount(p.id), 3)
    assert.equal(ds.ownedCount(q.id), 1)
    await p.retract('a', 'x')
    assert.equal(ds.ownedCount(p.id), 2)
    await p.exit()
    assert.equal(ds.ownedCount(p.id), 0)
    assert.equal(ds.ownedCount('nobody'), 0)
    await ds.close()
  })

  it('bounds the mailbox: drops are counted and reported on the next delivered message', async () => {
    const ds = createDataspace({ mailboxSize: 2 })
    const a = ds.process('a')
    const b = ds.process('b')
    for (let i = 0; i < 5; i++) await a.send(b.id, i)
    assert.equal(ds.stats.droppedMailboxMessages, 3)
    const iterator = b.messages[Symbol.asyncIterator]()
    assert.equal((await iterator.next()).value?.message, 0)
    assert.equal((await iterator.next()).value?.message, 1)
    await a.send(b.id, 5)
    assert.deepEqual((await iterator.next()).value, { from: a.id, message: 5, dropped: 3 })
    await ds.close()
  })
})
