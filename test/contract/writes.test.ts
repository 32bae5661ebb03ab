import assert from 'node:assert/strict'
import { it } from 'node:test'
import { z } from 'zod'
import { Conflict, InvalidArgument, NotOwner, SchemaViolation } from '../../src/index.js'
import { contract, currentRevision, drained } from './harness.js'

contract('assert options and validation', (c) => {
  it('CAS with ifRevision: 0 creates only, a revision must match', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const created = await p.assert('k', 'x', { v: 1 }, { ifRevision: 0 })
    await assert.rejects(p.assert('k', 'x', { v: 2 }, { ifRevision: 0 }), (err: unknown) => {
      assert.ok(err instanceof Conflict)
      assert.equal(err.currentRevision, created.revision)
      return true
    })
    await assert.rejects(
      p.assert('k', 'x', { v: 2 }, { ifRevision: created.revision + 5 }),
      Conflict,
    )
    const updated = await p.assert('k', 'x', { v: 2 }, { ifRevision: created.revision })
    assert.equal(updated.revision, created.revision + 1)
    await assert.rejects(p.retract('k', 'x', { ifRevision: created.revision }), Conflict)
    await p.retract('k', 'x', { ifRevision: updated.revision })
  })

  it('freezes records and data so readers share them safely', async () => {
    const ds = await c.open()
    const data = { nested: { list: [1, 2] } }
    const record = await ds.process('p').assert('k', 'x', data)
    assert.ok(Object.isFrozen(record))
    assert.ok(Object.isFrozen(record.data.nested.list))
    assert.throws(() => {
      data.nested.list.push(3)
    }, TypeError)
    const read = await ds.get<typeof data>('k', 'x')
    assert.ok(read !== undefined && Object.isFrozen(read.data.nested.list))
  })

  it('rejects non-JSON data, bad kinds, ids and labels with InvalidArgument', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await assert.rejects(p.assert('k', 'x', { when: new Date() }), /data\.when is a Date/)
    await assert.rejects(p.assert('k', 'x', { n: NaN }), InvalidArgument)
    await assert.rejects(p.assert('k', 'x', { f: () => 1 }), InvalidArgument)
    await assert.rejects(p.assert('bad kind', 'x', {}), InvalidArgument)
    await assert.rejects(p.assert('$group.member', 'x', {}), /reserved/)
    await assert.rejects(p.assert('k', '', {}), InvalidArgument)
    await assert.rejects(p.assert('k', 'x', {}, { labels: { 'bad key!': 'v' } }), InvalidArgument)
    await assert.rejects(
      p.assert('k', 'x', {}, { labels: { when: new Date() as never } }),
      InvalidArgument,
    )
    await assert.rejects(p.assert('k', 'x', {}, { ttl: -1 }), InvalidArgument)
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    await assert.rejects(p.assert('k', 'x', cyclic), /deeper/)
    await assert.rejects(
      p.transact({ then: [{ op: 'assert', kind: 'k', id: 'y', data: { when: new Date() } }] }),
      /data\.when is a Date/,
    )
    await p.assert('k', 'w', { n: 1 })
    const before = await currentRevision(ds)
    await assert.rejects(p.claim('k', { id: 'w', patch: { when: new Date() } }), InvalidArgument)
    await assert.rejects(p.claim('k', { id: 'w', patch: { n: NaN } }), InvalidArgument)
    assert.equal(await currentRevision(ds), before, 'nothing was committed')
    assert.deepEqual(
      (await ds.list('k')).items.map((r) => r.id),
      ['w'],
    )
  })

  it('validates with a Standard Schema and stores its output', async () => {
    const ds = await c.open()
    await ds.defineKind('user', {
      schema: z.object({ name: z.string(), age: z.number().default(0) }),
    })
    const p = ds.process('p')
    const record = await p.assert('user', 'u1', { name: 'ada' })
    assert.deepEqual(record.data, { name: 'ada', age: 0 })
    await assert.rejects(p.assert('user', 'u2', { name: 3 }), (err: unknown) => {
      assert.ok(err instanceof SchemaViolation)
      assert.match(err.message, /name/)
      assert.ok(err.issues.length > 0)
      return true
    })
    await assert.rejects(ds.defineKind('other', { schema: {} as never }), InvalidArgument)
  })

  it('claim leaves ownership unchanged by default; another owner refuses a write', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    await a.assert('k', 'x', { v: 1 })
    await a.claim('k', { id: 'x', patch: {} }) // ownership unchanged by default
    assert.equal((await ds.get('k', 'x'))?.owner, a.id)
    await b.assert('k', 'y', { v: 1 })
    await assert.rejects(a.assert('k', 'y', { v: 2 }), NotOwner)
  })
})

contract('transact', (c) => {
  it('applies every op in one revision, or nothing', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'x', { n: 1 })
    const before = await currentRevision(ds)
    const result = await p.transact({
      if: [{ kind: 'k', id: 'x', field: 'n', equals: 1 }],
      then: [
        { op: 'assert', kind: 'k', id: 'y', data: { n: 2 } },
        { op: 'retract', kind: 'k', id: 'x' },
        { op: 'assert', kind: 'other', id: 'z', data: {} },
      ],
    })
    assert.equal(result.revision, before + 1)
    assert.equal(await currentRevision(ds), before + 1)
    assert.equal(result.results.length, 3)
    assert.equal(result.results[0]?.revision, before + 1)

    const failing = p.transact({
      if: [{ kind: 'k', id: 'y', revision: result.revision }],
      then: [
        { op: 'assert', kind: 'k', id: 'w', data: {} },
        { op: 'retract', kind: 'k', id: 'missing' },
      ],
    })
    await assert.rejects(failing, { code: 'NotFound' })
    await assert.rejects(
      p.transact({
        if: [{ kind: 'k', id: 'y', exists: false }],
        then: [{ op: 'assert', kind: 'k', id: 'w', data: {} }],
      }),
      Conflict,
    )
    assert.equal(await currentRevision(ds), before + 1, 'failed transactions commit nothing')
    assert.equal(await ds.get('k', 'w'), undefined)
  })

  it('later ops see earlier ones; several ops on one id collapse into one change', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const watch = ds.watch('k', { snapshot: false })
    const now = await currentRevision(ds)
    await p.transact({
      then: [
        { op: 'assert', kind: 'k', id: 'a', data: { v: 1 } },
        { op: 'assert', kind: 'k', id: 'a', data: { v: 2 }, ifRevision: now + 1 },
        { op: 'assert', kind: 'k', id: 'tmp', data: {} },
        { op: 'retract', kind: 'k', id: 'tmp' },
      ],
    })
    const events = await drained(c, ds, watch)
    assert.equal(events.length, 1)
    assert.deepEqual(events[0]?.type === 'asserted' && events[0].record.data, { v: 2 })
  })

  it('claims inside a transaction: worker and actor in one commit', async () => {
    const ds = await c.open()
    const worker = ds.process('worker')
    const scheduler = ds.process('scheduler')
    await ds.defineKind('substrate.worker', { indexes: ['pool', 'actor_id'] })
    await worker.assert('substrate.worker', 'w1', { pool: 'cpu', actor_id: '' })
    const result = await scheduler.transact({
      then: [
        {
          op: 'claim',
          kind: 'substrate.worker',
          fields: 'pool=cpu,actor_id=',
          patch: { actor_id: 'a1' },
        },
        { op: 'assert', kind: 'substrate.actor', id: 'a1', data: { status: 'scheduled' } },
      ],
    })
    assert.deepEqual(result.results[0]?.data, { pool: 'cpu', actor_id: 'a1' })
    await assert.rejects(
      scheduler.transact({
        then: [
          {
            op: 'claim',
            kind: 'substrate.worker',
            fields: 'pool=cpu,actor_id=',
            patch: { actor_id: 'a2' },
          },
          { op: 'assert', kind: 'substrate.actor', id: 'a2', data: { status: 'scheduled' } },
        ],
      }),
      Conflict,
    )
    assert.equal(await ds.get('substrate.actor', 'a2'), undefined)
    const optional = await scheduler.transact({
      then: [
        { op: 'claim', kind: 'substrate.worker', fields: 'actor_id=', patch: {}, optional: true },
      ],
    })
    assert.deepEqual(optional.results, [undefined])
  })

  it('rejects malformed requests', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await assert.rejects(
      p.transact({ then: [{ op: 'upsert', kind: 'k', id: 'x' } as never] }),
      InvalidArgument,
    )
    await assert.rejects(p.transact({ then: 'nope' as never }), InvalidArgument)
    await assert.rejects(p.transact({ then: [null as never] }), InvalidArgument)
    await assert.rejects(
      p.transact({ if: [{ kind: 'k', id: 'x', equals: 1 }], then: [] }),
      InvalidArgument,
    )
  })
})

contract('claim', (c) => {
  it('patches the first match by id (or orderBy) and re-checks the selector in the commit', async () => {
    const ds = await c.open()
    const owner = ds.process('workers')
    const a = ds.process('a')
    const b = ds.process('b')
    for (const id of ['w3', 'w1', 'w2'])
      await owner.assert('w', id, { free: true, load: id === 'w2' ? 0 : 5 })
    const [x, y] = await Promise.all([
      a.claim('w', { fields: 'free=true', patch: { free: false } }),
      b.claim('w', { fields: 'free=true', patch: { free: false } }),
    ])
    assert.equal(x?.id, 'w1')
    assert.equal(y?.id, 'w2')
    assert.equal(x?.owner, owner.id, 'ownership unchanged by default')
    const z = await a.claim('w', { fields: 'free=true', patch: { free: false }, owner: 'self' })
    assert.equal(z?.id, 'w3')
    assert.equal(z?.owner, a.id)
    assert.equal(await b.claim('w', { fields: 'free=true', patch: { free: false } }), undefined)
    await owner.assert('w', 'w1', { free: true, load: 9 })
    await owner.assert('w', 'w2', { free: true, load: 1 })
    assert.equal(
      (await a.claim('w', { fields: 'free=true', orderBy: 'load', patch: { free: false } }))?.id,
      'w2',
    )
    assert.equal((await a.claim('w', { orderBy: '-createdRevision', patch: {} }))?.id, 'w2')
    const taken = await b.claim('w', { id: 'w1', patch: { owner: 'self', load: 1 } })
    assert.equal(taken?.owner, b.id, "owner: 'self' inside the patch transfers ownership")
    assert.deepEqual(taken?.data, { free: true, load: 1 })
    await assert.rejects(a.claim('w', { patch: [] as never }), InvalidArgument)
    await assert.rejects(a.claim('w', { patch: {}, owner: 'other' as never }), InvalidArgument)
  })
})

contract('ownerless records', (c) => {
  it('owner: null creates a record that outlives its writer and any process may write', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    const record = await a.assert('config', 'x', { v: 1 }, { owner: null })
    assert.equal(record.owner, null)
    await a.exit()
    assert.deepEqual((await ds.get('config', 'x'))?.data, { v: 1 })
    const updated = await b.assert('config', 'x', { v: 2 }, { ifRevision: record.revision })
    assert.equal(updated.owner, null, 'writing an ownerless record does not take it')
    await b.retract('config', 'x')
    await b.assert('mine', 'y', {})
    assert.equal(
      (await b.assert('mine', 'y', {}, { owner: null })).owner,
      null,
      'owner: null releases',
    )
    await assert.rejects(b.assert('mine', 'z', {}, { owner: 'someone' as never }), InvalidArgument)
  })
})
