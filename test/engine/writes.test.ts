import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace } from '../../src/index.js'
import { drain } from './helpers.js'

describe('TTL', () => {
  it('expires records with reason expired, in one commit, and reads never see them late', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 })
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { snapshot: false })
    const a = await p.assert('k', 'a', {}, { ttl: 1000 })
    await p.assert('k', 'b', {}, { ttl: 1000 })
    await p.assert('k', 'c', {}, { ttl: 5000 })
    assert.equal(a.expiresAt, 1_001_000)
    await drain(watch)
    const before = ds.revision
    t.mock.timers.tick(1000)
    assert.deepEqual(
      (await ds.list('k')).items.map((r) => r.id),
      ['c'],
    )
    assert.equal(ds.revision, before + 1)
    const events = await drain(watch)
    assert.deepEqual(
      events.map((e) => e.type === 'retracted' && `${e.record.id}:${e.reason}`),
      ['a:expired', 'b:expired'],
    )
    await ds.close()
  })

  it('an overwrite without ttl clears the deadline; with ttl it moves it', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const ds = createDataspace()
    const p = ds.process('p')
    await p.assert('k', 'a', {}, { ttl: 100 })
    await p.assert('k', 'a', { v: 2 })
    await p.assert('k', 'b', {}, { ttl: 100 })
    await p.assert('k', 'b', {}, { ttl: 300 })
    t.mock.timers.tick(200)
    assert.deepEqual(
      (await ds.list('k')).items.map((r) => r.id),
      ['a', 'b'],
    )
    t.mock.timers.tick(200)
    assert.deepEqual(
      (await ds.list('k')).items.map((r) => r.id),
      ['a'],
    )
    await ds.close()
  })

  it('fires from its timer with no reads', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    const ds = createDataspace()
    const p = ds.process('p')
    const watch = ds.watch('k', { snapshot: false })
    await p.assert('k', 'a', {}, { ttl: 50 })
    await drain(watch)
    t.mock.timers.tick(60)
    const events = await drain(watch)
    assert.equal(events.length, 1)
    assert.equal(events[0]?.type === 'retracted' && events[0].reason, 'expired')
    await ds.close()
  })
})
