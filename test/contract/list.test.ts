import assert from 'node:assert/strict'
import { it } from 'node:test'
import { Conflict, InvalidArgument, InvalidSelector } from '../../src/index.js'
import type { Contract } from './harness.js'
import { contract, expectWatchError } from './harness.js'

async function seeded(c: Contract, count: number) {
  const ds = await c.open()
  await ds.defineKind('w', { indexes: ['pool', 'snapshots'] })
  const p = ds.process('p')
  await p.transact({
    then: Array.from({ length: count }, (_, i) => ({
      op: 'assert' as const,
      kind: 'w',
      id: `w-${String(i).padStart(4, '0')}`,
      data: { pool: `p${i % 5}`, free: i % 2 === 0, snapshots: i % 3 === 0 ? ['s1', 's2'] : [] },
      labels: { tier: i % 4 === 0 ? 'web' : 'db' },
    })),
  })
  return { ds, p }
}

contract('list', (c) => {
  it('selects by id glob, fields, labels and owner, in id order', async () => {
    const { ds, p } = await seeded(c, 40)
    const ids = async (options: Parameters<typeof ds.list>[1]) =>
      (await ds.list('w', options)).items.map((r) => r.id)
    assert.deepEqual(await ids({ id: 'w-000?' }), [
      'w-0000',
      'w-0001',
      'w-0002',
      'w-0003',
      'w-0004',
      'w-0005',
      'w-0006',
      'w-0007',
      'w-0008',
      'w-0009',
    ])
    assert.deepEqual(await ids({ id: 'w-0012' }), ['w-0012'])
    // A record whose id equals the glob's literal prefix is part of the range.
    assert.deepEqual(await ids({ id: 'w-0012*' }), ['w-0012'])
    assert.deepEqual(await ids({ id: '*9' }), ['w-0009', 'w-0019', 'w-0029', 'w-0039'])
    assert.deepEqual(await ids({ fields: 'pool=p1,free=false' }), [
      'w-0001',
      'w-0011',
      'w-0021',
      'w-0031',
    ])
    assert.deepEqual(await ids({ fields: { pool: 'p1', free: 'false' } }), [
      'w-0001',
      'w-0011',
      'w-0021',
      'w-0031',
    ])
    assert.equal((await ids({ fields: 'snapshots=s2' })).length, 14)
    assert.equal((await ids({ fields: 'snapshots=' })).length, 26)
    assert.equal((await ids({ fields: 'pool!=p0' })).length, 32)
    assert.deepEqual(await ids({ labels: 'tier=web', id: 'w-001*' }), ['w-0012', 'w-0016'])
    assert.equal((await ids({ labels: 'tier notin (web)' })).length, 30)
    assert.equal((await ids({ owner: p.id })).length, 40)
    assert.deepEqual(await ids({ owner: 'someone/else#1' }), [])
  })

  it('explains which index serves a query', async () => {
    const { ds, p } = await seeded(c, 200)
    assert.deepEqual(await ds.explain('w', { id: 'w-0001' }), {
      index: 'id',
      scanned: 'index',
      candidates: 1,
    })
    assert.deepEqual(await ds.explain('w', { id: 'w-001*' }), {
      index: 'id-prefix',
      scanned: 'index',
      candidates: 10,
    })
    assert.deepEqual(await ds.explain('w', { fields: 'pool=p3' }), {
      index: 'field:pool',
      scanned: 'index',
      candidates: 40,
    })
    assert.deepEqual(await ds.explain('w', { fields: 'free=true' }), {
      index: null,
      scanned: 'full',
      candidates: 200,
    })
    assert.equal((await ds.explain('w', { labels: 'tier=web' })).index, 'label:tier')
    assert.equal((await ds.explain('w', { fields: 'pool=p3', id: 'w-000*' })).index, 'id-prefix')
    assert.equal((await ds.explain('w', { owner: p.id, fields: 'pool=p3' })).index, 'field:pool')
    assert.equal((await ds.explain('w', { fields: 'snapshots!=s1' })).index, 'field:snapshots')
    assert.deepEqual(await ds.explain('never.written'), {
      index: null,
      scanned: 'full',
      candidates: 0,
      unknownKind: true,
    })
    await ds.defineKind('defined.empty')
    assert.equal((await ds.explain('defined.empty')).unknownKind, undefined)
  })

  it('keeps indexes right through overwrites, retractions and exits', async () => {
    const { ds, p } = await seeded(c, 20)
    await p.assert('w', 'w-0000', { pool: 'p9', snapshots: ['s9'] })
    await p.retract('w', 'w-0005')
    assert.deepEqual(
      (await ds.list('w', { fields: 'pool=p0' })).items.map((r) => r.id),
      ['w-0010', 'w-0015'],
    )
    assert.deepEqual(
      (await ds.list('w', { fields: 'snapshots=s9' })).items.map((r) => r.id),
      ['w-0000'],
    )
    await p.exit()
    assert.equal((await ds.list('w', { fields: 'pool=p1' })).items.length, 0)
    assert.equal((await ds.explain('w', { fields: 'pool=p1' })).candidates, 0)
  })

  it('pages with an opaque continue token, consistent at the first page revision', async () => {
    const { ds, p } = await seeded(c, 25)
    const first = await ds.list('w', { limit: 10, fields: 'free=true' })
    assert.equal(first.items.length, 10)
    assert.ok(first.continue !== undefined)
    // Writes between pages must not show up in later pages.
    await p.retract('w', 'w-0024')
    await p.assert('w', 'w-0022', { pool: 'p2', free: false })
    await p.assert('w', 'w-0023', { pool: 'p3', free: true })
    const second = await ds.list('w', { limit: 10, fields: 'free=true', continue: first.continue })
    assert.equal(second.revision, first.revision)
    assert.equal(second.continue, undefined)
    assert.deepEqual(
      [...first.items, ...second.items].map((r) => r.id),
      Array.from({ length: 13 }, (_, i) => `w-${String(i * 2).padStart(4, '0')}`),
    )
  })

  it('rejects a continue token for another query, a forged one, and an expired one', async () => {
    const ds = await c.open({ historySize: 5 })
    const p = ds.process('p')
    for (let i = 0; i < 6; i++) await p.assert('k', `r${i}`, {})
    const page = await ds.list('k', { limit: 2 })
    assert.ok(page.continue !== undefined)
    await assert.rejects(
      ds.list('k', { limit: 2, id: 'r*', continue: page.continue }),
      InvalidArgument,
    )
    await assert.rejects(ds.list('k', { limit: 2, continue: 'not-a-token' }), InvalidArgument)
    for (let i = 0; i < 10; i++) await p.assert('k', `s${i}`, {})
    await assert.rejects(ds.list('k', { limit: 2, continue: page.continue }), (err: unknown) => {
      assert.ok(err instanceof Conflict)
      assert.match(err.message, /expired/)
      return true
    })
    await assert.rejects(ds.list('k', { limit: 0 }), InvalidArgument)
  })

  it('rejects selectors on undeclared fields of a kind with a closed field list', async () => {
    const ds = await c.open()
    await ds.defineKind('job', { fields: ['status', 'queue'], indexes: ['queue'] })
    await ds.process('p').assert('job', 'j1', { status: 'new', queue: 'q' })
    assert.equal((await ds.list('job', { fields: 'status=new' })).items.length, 1)
    await assert.rejects(ds.list('job', { fields: 'status=new,sttaus=x' }), (err: unknown) => {
      assert.ok(err instanceof InvalidSelector)
      assert.match(err.message, /sttaus/)
      return true
    })
    await expectWatchError(c, () => ds.watch('job', { fields: 'nope=1' }), InvalidSelector)
    await assert.rejects(ds.defineKind('bad', { fields: ['a'], indexes: ['b'] }), InvalidArgument)
  })

  it('rebuilds indexes declared after records exist', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'a', { color: 'red' })
    await p.assert('k', 'b', { color: 'blue' })
    await ds.defineKind('k', { indexes: ['color'] })
    assert.deepEqual(await ds.explain('k', { fields: 'color=red' }), {
      index: 'field:color',
      scanned: 'index',
      candidates: 1,
    })
  })
})
