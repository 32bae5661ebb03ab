// The behaviours the Saluki dataspaces PR (seeds/000) promises, through the public API.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { NotFound, NotOwner, ProcessExited } from '../../src/index.js'
import { applyEvents } from '../engine/helpers.js'
import { contract, currentRevision, drained, next } from './harness.js'

contract('Saluki dataspace behaviours', (c) => {
  it('gives a late subscriber the current state at once, then live changes', async () => {
    const ds = await c.open()
    const health = ds.process('health')
    await health.assert('api.route', 'health', { path: '/health' })
    await health.assert('api.route', 'ready', { path: '/ready' })

    const watch = ds.watch('api.route')
    const first = await next(watch)
    assert.equal(first.type, 'snapshot')
    assert.deepEqual(first.type === 'snapshot' && first.records.map((r) => r.id), [
      'health',
      'ready',
    ])

    await health.assert('api.route', 'live', { path: '/live' })
    const live = await next(watch)
    assert.equal(live.type, 'asserted')
    assert.equal(live.type === 'asserted' && live.record.id, 'live')
    assert.ok(
      live.type === 'asserted' && first.type === 'snapshot' && live.revision > first.revision,
    )
    watch.close()
  })

  it('keeps two kinds under one id apart', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('api.route', 'x', { path: '/x' })
    await p.assert('health.check', 'x', { ok: true })
    assert.deepEqual((await ds.get('api.route', 'x'))?.data, { path: '/x' })
    assert.deepEqual((await ds.get('health.check', 'x'))?.data, { ok: true })
    await p.retract('api.route', 'x')
    assert.equal(await ds.get('api.route', 'x'), undefined)
    assert.deepEqual((await ds.get('health.check', 'x'))?.data, { ok: true })
  })

  it('rejects writes by a process that does not own the record', async () => {
    const ds = await c.open()
    const owner = ds.process('owner')
    const other = ds.process('other')
    await owner.assert('api.route', 'r', { v: 1 })
    await assert.rejects(other.assert('api.route', 'r', { v: 2 }), (err: unknown) => {
      assert.ok(err instanceof NotOwner)
      assert.equal(err.code, 'NotOwner')
      assert.equal(err.owner, owner.id)
      return true
    })
    await assert.rejects(other.retract('api.route', 'r'), NotOwner)
    assert.deepEqual((await ds.get('api.route', 'r'))?.data, { v: 1 })
    await owner.assert('api.route', 'r', { v: 3 })
    assert.deepEqual((await ds.get('api.route', 'r'))?.data, { v: 3 })
  })

  it('reports the previous record on an owner overwrite', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const watch = ds.watch('api.route', { snapshot: false })
    const first = await p.assert('api.route', 'r', { v: 1 })
    await p.assert('api.route', 'r', { v: 2 })
    const events = await drained(c, ds, watch)
    assert.equal(events.length, 2)
    const [, overwrite] = events
    assert.equal(overwrite?.type, 'asserted')
    if (overwrite?.type !== 'asserted') return
    assert.deepEqual(overwrite.previous, first)
    assert.equal(overwrite.record.createdRevision, first.revision)
  })

  it('retracts with NotFound for a missing record', async () => {
    const ds = await c.open()
    await assert.rejects(ds.process('p').retract('api.route', 'nope'), NotFound)
  })

  for (const ending of ['return', 'throw', 'abort'] as const) {
    it(`retracts everything a spawned process owned when it ${ending}s, in one commit`, async () => {
      const ds = await c.open()
      const watch = ds.watch('api.route', { snapshot: false })
      const controller = new AbortController()
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const proc = ds.spawn(
        'sub',
        async (self) => {
          await self.assert('api.route', 'a', { path: '/a' })
          await self.assert('api.route', 'b', { path: '/b' })
          await gate
          if (ending === 'throw') throw new Error('boom')
        },
        { signal: controller.signal },
      )
      while ((await ds.list('api.route')).items.length < 2)
        await new Promise((r) => setImmediate(r))
      const before = await currentRevision(ds)
      if (ending === 'abort') controller.abort()
      else release()
      const reason = await proc.exited
      if (ending === 'throw') assert.ok(typeof reason === 'object' && reason.error instanceof Error)
      else assert.equal(reason, ending === 'abort' ? 'aborted' : 'normal')
      assert.equal(proc.alive, false)
      assert.equal(await currentRevision(ds), before + 1, 'one commit retracts everything')
      assert.deepEqual((await ds.list('api.route')).items, [])
      const retractions = (await drained(c, ds, watch)).filter((e) => e.type === 'retracted')
      assert.equal(retractions.length, 2)
      for (const event of retractions) {
        assert.ok(event.type === 'retracted')
        assert.equal(event.reason, 'owner-exit')
        assert.equal(event.revision, before + 1)
      }
      await assert.rejects(proc.assert('api.route', 'c', {}), ProcessExited)
      release()
    })
  }

  it('replays nothing after a retract: a new subscriber sees only what is asserted now', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('api.route', 'gone', { path: '/gone' })
    await p.retract('api.route', 'gone')
    await p.assert('api.route', 'here', { path: '/here' })
    const watch = ds.watch('api.route')
    const events = await drained(c, ds, watch)
    assert.equal(events.length, 1)
    assert.deepEqual(events[0]?.type === 'snapshot' && events[0].records.map((r) => r.id), ['here'])
  })

  it('filters watches by exact id and by glob', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const exact = ds.watch('api.route', { id: 'api-routes-1', snapshot: false })
    const glob = ds.watch('api.route', { id: 'api-routes-*', snapshot: false })
    const other = ds.watch('api.route', { id: 'other-?', snapshot: false })
    await p.assert('api.route', 'api-routes-1', {})
    await p.assert('api.route', 'api-routes-22', {})
    await p.assert('api.route', 'other-1', {})
    await p.assert('api.route', 'other-12', {})
    const ids = async (w: typeof exact): Promise<string[]> =>
      (await drained(c, ds, w)).flatMap((e) => (e.type === 'asserted' ? [e.record.id] : []))
    assert.deepEqual(await ids(exact), ['api-routes-1'])
    assert.deepEqual(await ids(glob), ['api-routes-1', 'api-routes-22'])
    assert.deepEqual(await ids(other), ['other-1'])
  })

  it('canonicalises numeric ids to decimal strings', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const record = await p.assert('api.route', 42, { v: 1 })
    assert.equal(record.id, '42')
    assert.deepEqual((await ds.get('api.route', '42'))?.data, { v: 1 })
    assert.deepEqual((await ds.get('api.route', 42))?.data, { v: 1 })
  })

  it('keeps a watcher view equal to list() through a mixed sequence', async () => {
    const ds = await c.open()
    const [a, b] = [ds.process('a'), ds.process('b')]
    const watch = ds.watch<{ n: number }>('k', { fields: 'n!=0' })
    await a.assert('k', '1', { n: 1 })
    await b.assert('k', '2', { n: 2 })
    await a.assert('k', '1', { n: 0 }) // leaves the selection
    await b.exit()
    await a.assert('k', '3', { n: 3 })
    const view = applyEvents(new Map(), await drained(c, ds, watch))
    const listed = (await ds.list<{ n: number }>('k', { fields: 'n!=0' })).items
    assert.deepEqual(new Map(listed.map((r) => [r.id, r.data])), view)
  })
})
