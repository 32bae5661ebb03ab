// Non-resident kinds (docs/backends.md, "Non-resident kinds"): records that live only in the
// durable backend. Every case runs over SQLite and PostgreSQL through the public API, and checks
// both what a resident kind would answer and that the records really stayed out of memory.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend } from '../../src/backends/index.js'
import { createDataspace, openDataspace } from '../../src/index.js'
import type { Dataspace, DataspaceRecord, WatchEvent } from '../../src/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const KIND = 'substrate.worker'
const scratch = mkdtempSync(join(tmpdir(), 'ds-nonresident-'))
after(() => rmSync(scratch, { recursive: true, force: true }))
let stores = 0

/** A fresh store: `make()` gives a new backend over it (a restart reopens the same store). */
interface Store {
  make(): Backend
}

const variants: readonly (readonly [string, string | false, () => Promise<Store>])[] = [
  [
    'sqlite',
    false,
    async () => {
      const path = join(scratch, `${++stores}.db`)
      return { make: () => sqliteBackend({ path }) }
    },
  ],
  [
    'postgres',
    postgresSkip,
    async () => {
      const schema = `ds_nonres_${process.pid}_${++stores}`
      cleanups.push(() => dropSchema(schema))
      return { make: () => postgresBackend({ url: POSTGRES_URL, schema }) }
    },
  ],
]

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function open(store: Store): Promise<Dataspace> {
  const ds = await openDataspace({ backend: store.make() })
  cleanups.push(() => ds.close())
  return ds
}

async function declare(ds: Dataspace): Promise<void> {
  await ds.defineKind(KIND, { indexes: ['pool', 'actor_id', 'cached'], resident: false })
}

/** Reads every event the watch has queued now. */
async function drain<T>(
  watch: AsyncIterator<WatchEvent<T>>,
  count: number,
): Promise<WatchEvent<T>[]> {
  const events: WatchEvent<T>[] = []
  while (events.length < count) {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`only ${events.length} of ${count} events`)), 3000),
    )
    const pending = pendingNext.get(watch) as Promise<IteratorResult<WatchEvent<T>>> | undefined
    pendingNext.delete(watch)
    const result = await Promise.race([pending ?? watch.next(), timeout])
    if (result.done === true) throw new Error('watch ended')
    events.push(result.value)
  }
  return events
}

/**
 * Applies the watch's events to `state` until it has every change up to `revision`, and returns
 * that revision. The events of one commit arrive together: after the last revision is reached,
 * the rest of its batch (what is queued now) is read too.
 */
async function follow(
  watch: AsyncIterator<WatchEvent>,
  state: Map<string, DataspaceRecord>,
  from: number,
  revision: number,
): Promise<number> {
  let at = from
  const apply = (event: WatchEvent | undefined): void => {
    if (event?.type === 'asserted') state.set(event.record.id, event.record)
    else if (event?.type === 'retracted') state.delete(event.record.id)
    else assert.fail(`unexpected ${event?.type}`)
    assert.ok(event.revision >= at, 'changes arrive in revision order')
    at = event.revision
  }
  while (at < revision) apply((await drain(watch, 1))[0])
  for (;;) {
    const next = pendingNext.get(watch) ?? watch.next()
    pendingNext.delete(watch)
    const result = await Promise.race([
      next,
      new Promise<'idle'>((resolve) => setTimeout(() => resolve('idle'), 20)),
    ])
    if (result === 'idle') {
      // The read stays pending for the next call: a stream takes one next() at a time.
      pendingNext.set(watch, next)
      return at
    }
    if (result.done === true) return at
    apply(result.value)
  }
}

const pendingNext = new WeakMap<object, Promise<IteratorResult<WatchEvent>>>()

const ids = (records: readonly DataspaceRecord[]): string[] => records.map((r) => r.id)

for (const [name, skip, fresh] of variants) {
  describe(`non-resident kinds [${name}]`, { skip }, () => {
    it('keeps the records out of memory and serves get, list and explain from the backend', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const node = ds.process('node')
      for (let i = 0; i < 30; i++) {
        await node.assert(
          KIND,
          `w${String(i).padStart(2, '0')}`,
          {
            pool: i % 3 === 0 ? 'gpu' : 'cpu',
            actor_id: '',
            cached: i % 5 === 0 ? ['snap-a'] : [],
          },
          { labels: { zone: i % 2 === 0 ? 'east' : 'west' } },
        )
      }
      assert.equal(ds.stats.records, 0, 'no record of a non-resident kind is held in memory')
      assert.deepEqual((await ds.get(KIND, 'w03'))?.data, { pool: 'gpu', actor_id: '', cached: [] })
      assert.equal(await ds.get(KIND, 'nope'), undefined)
      const gpu = await ds.list(KIND, { fields: 'pool=gpu' })
      assert.deepEqual(ids(gpu.items), [
        'w00',
        'w03',
        'w06',
        'w09',
        'w12',
        'w15',
        'w18',
        'w21',
        'w24',
        'w27',
      ])
      const cached = await ds.list(KIND, { fields: { cached: 'snap-a' }, labels: 'zone=east' })
      assert.deepEqual(ids(cached.items), ['w00', 'w10', 'w20'])
      // Pages: keyset by id, every match once.
      const seen: string[] = []
      let page = await ds.list(KIND, { fields: 'pool=cpu', limit: 7 })
      for (;;) {
        seen.push(...ids(page.items))
        if (page.continue === undefined) break
        page = await ds.list(KIND, { fields: 'pool=cpu', limit: 7, continue: page.continue })
      }
      assert.equal(seen.length, 20)
      assert.deepEqual(seen, [...seen].sort())
      const plan = await ds.explain(KIND, { fields: 'pool=gpu' })
      assert.equal(plan.backend?.name, name)
      assert.equal(plan.scanned, 'index')
      assert.ok(plan.index !== null)
    })

    it('checks ownership, revisions and conditions against the stored record', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const a = ds.process('a')
      const b = ds.process('b')
      const first = await a.assert(KIND, 'w1', { pool: 'p', actor_id: '' })
      await assert.rejects(b.assert(KIND, 'w1', { pool: 'q' }), { code: 'NotOwner' })
      await assert.rejects(b.retract(KIND, 'w1'), { code: 'NotOwner' })
      await assert.rejects(a.assert(KIND, 'w1', { pool: 'p' }, { ifRevision: 0 }), {
        code: 'Conflict',
      })
      const second = await a.assert(KIND, 'w1', { pool: 'r' }, { ifRevision: first.revision })
      assert.equal(second.createdRevision, first.createdRevision)
      await assert.rejects(
        a.transact({ if: [{ kind: KIND, id: 'w1', field: 'pool', equals: 'p' }], then: [] }),
        { code: 'Conflict' },
      )
      const done = await a.transact({
        if: [{ kind: KIND, id: 'w1', field: 'pool', equals: 'r' }],
        then: [
          { op: 'retract', kind: KIND, id: 'w1' },
          { op: 'assert', kind: KIND, id: 'w2', data: { pool: 'r' } },
        ],
      })
      assert.equal(done.results.length, 2)
      assert.equal(await ds.get(KIND, 'w1'), undefined)
      assert.equal((await ds.get(KIND, 'w2'))?.owner, a.id)
      await assert.rejects(a.retract(KIND, 'w1'), { code: 'NotFound' })
    })

    it('never hands one record to two concurrent claims', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const node = ds.process('node')
      for (let i = 0; i < 40; i++) {
        await node.assert(
          KIND,
          `w${String(i).padStart(2, '0')}`,
          { pool: 'p', actor_id: '' },
          { owner: null },
        )
      }
      const schedulers = Array.from({ length: 5 }, (_, i) => ds.process(`scheduler-${i}`))
      const claims = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (schedulers[i % 5] as (typeof schedulers)[number]).claim(KIND, {
            fields: 'pool=p,actor_id=',
            patch: { actor_id: `actor-${i}` },
          }),
        ),
      )
      const won = claims.filter((r) => r !== undefined)
      assert.equal(won.length, 40, 'every free worker is claimed once, and 20 claims find none')
      assert.equal(new Set(won.map((r) => r.id)).size, 40)
      const free = await ds.list(KIND, { fields: 'actor_id=' })
      assert.equal(free.items.length, 0)
      // Any order other than id reads every match, and still picks the best.
      await node.assert(KIND, 'z1', { pool: 'q', actor_id: '', size: 5 }, { owner: null })
      await node.assert(KIND, 'z2', { pool: 'q', actor_id: '', size: 9 }, { owner: null })
      const biggest = await node.claim(KIND, {
        fields: 'pool=q',
        orderBy: '-size',
        patch: { actor_id: 'x' },
      })
      assert.equal(biggest?.id, 'z2')
    })

    it('retracts what an exiting process held, resident and not, in one commit', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const worker = ds.process('worker')
      await worker.assert(KIND, 'w1', { pool: 'p' })
      await worker.assert(KIND, 'w2', { pool: 'p' })
      await worker.assert('resident.note', 'n1', { hello: true })
      assert.equal(ds.ownedCount(worker.id), 3)
      const watch = ds.watch(KIND)[Symbol.asyncIterator]()
      const [snapshot] = await drain(watch, 1)
      assert.equal(snapshot?.type, 'snapshot')
      assert.deepEqual(snapshot?.type === 'snapshot' ? ids(snapshot.records) : [], ['w1', 'w2'])
      const notes = ds.watch('resident.note', { snapshot: false })[Symbol.asyncIterator]()
      await worker.exit()
      const gone = await drain(watch, 2)
      const [note] = await drain(notes, 1)
      assert.deepEqual(
        gone.map((e) => e.type === 'retracted' && e.reason),
        ['owner-exit', 'owner-exit'],
      )
      assert.equal(
        note?.type === 'retracted' ? note.revision : -1,
        gone[0]?.type === 'retracted' ? gone[0].revision : -2,
      )
      assert.equal((await ds.list(KIND)).items.length, 0)
      assert.equal(ds.ownedCount(worker.id), 0)
    })

    it('gives a watch a snapshot read from the backend, then every later change once', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const node = ds.process('node')
      for (let i = 0; i < 5; i++) await node.assert(KIND, `w${i}`, { pool: 'p' })
      const watch = ds.watch(KIND, { fields: 'pool=p' })[Symbol.asyncIterator]()
      // Writes racing the snapshot's read: each must show up in the snapshot or as an event.
      const racing = Promise.all([node.assert(KIND, 'w9', { pool: 'p' }), node.retract(KIND, 'w0')])
      const [snapshot] = await drain(watch, 1)
      assert.equal(snapshot?.type, 'snapshot')
      await racing
      if (snapshot?.type !== 'snapshot') throw new Error('no snapshot')
      const state = new Map(snapshot.records.map((r) => [r.id, r]))
      await node.assert(KIND, 'w1', { pool: 'p', n: 2 })
      const now = await ds.list(KIND, { fields: 'pool=p' })
      await follow(watch, state, snapshot.revision, now.revision)
      assert.deepEqual(
        [...state.values()].sort((x, y) => (x.id < y.id ? -1 : 1)),
        now.items,
      )
      assert.ok(state.has('w9') && !state.has('w0'))
    })

    it('keeps a watcher’s view equal to list() under concurrent writes, claims and exits', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const watch = ds.watch(KIND)[Symbol.asyncIterator]()
      const [snapshot] = await drain(watch, 1)
      if (snapshot?.type !== 'snapshot') throw new Error('no snapshot')
      const state = new Map(snapshot.records.map((r) => [r.id, r]))
      let at = snapshot.revision
      let seed = 7
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        return Math.floor((seed / 2 ** 31) * n)
      }
      const procs = Array.from({ length: 4 }, (_, i) => ds.process(`p${i}`))
      for (let round = 0; round < 12; round++) {
        const ops = Array.from({ length: 25 }, () => {
          const proc = procs[random(procs.length)] as (typeof procs)[number]
          const id = `r${random(20)}`
          switch (random(4)) {
            case 0:
              return proc.assert(KIND, id, { pool: `p${random(2)}`, actor_id: '' })
            case 1:
              return proc.retract(KIND, id)
            case 2:
              return proc.claim(KIND, {
                fields: `pool=p${random(2)},actor_id=`,
                patch: { actor_id: 'a' },
              })
            default:
              return proc.assert(KIND, id, { pool: 'p1', actor_id: '' }, { owner: null })
          }
        })
        await Promise.allSettled(ops)
        if (round % 4 === 3) {
          const victim = procs.shift() as (typeof procs)[number]
          await victim.exit()
          procs.push(ds.process(`p-${round}`))
        }
        const now = await ds.list(KIND)
        at = await follow(watch, state, at, now.revision)
        const view = [...state.values()].sort((x, y) => (x.id < y.id ? -1 : 1))
        assert.deepEqual(view, now.items, `round ${round}`)
        for (const record of now.items) assert.deepEqual(await ds.get(KIND, record.id), record)
      }
    })

    it('survives a restart without loading the kind, and reaps what dead processes held', async () => {
      const store = await fresh()
      const first = await openDataspace({ backend: store.make() })
      await declare(first)
      const gone = first.process('gone')
      await gone.assert(KIND, 'owned', { pool: 'p' })
      const keeper = first.process('keeper')
      await keeper.assert(KIND, 'free', { pool: 'p' }, { owner: null })
      // The process does not exit: the server "crashes" with it alive (close keeps nothing else).
      await first.close()
      const second = await open(store)
      assert.equal(second.stats.records, 0)
      const listed = await second.list(KIND)
      assert.deepEqual(
        ids(listed.items),
        ['free'],
        'the dead owner’s record was reaped at start-up',
      )
      assert.equal((await second.explain(KIND, { fields: 'pool=p' })).backend?.name, name)
      await assert.rejects(second.defineKind(KIND, { resident: true }), { code: 'InvalidArgument' })
    })

    it('refuses a ttl, a residency change, and synchronous reads', async () => {
      const ds = await open(await fresh())
      await declare(ds)
      const p = ds.process('p')
      await assert.rejects(p.assert(KIND, 'x', { pool: 'p' }, { ttl: 1000 }), /non-resident/)
      await p.assert('other', 'x', {})
      await assert.rejects(ds.defineKind('other', { resident: false }), /before its first record/)
      await assert.rejects(ds.defineKind('more', { resident: 'no' as unknown as boolean }), {
        code: 'InvalidArgument',
      })
      assert.throws(() => ds.query(KIND), /non-resident/)
      // Redeclaring without `resident` keeps it.
      await ds.defineKind(KIND, { indexes: ['pool'] })
      await p.assert(KIND, 'y', { pool: 'p' })
      assert.equal(ds.stats.records, 1)
    })
  })
}

describe('non-resident kinds without a query backend', () => {
  it('are resident: the memory backend holds every kind', async () => {
    const ds = createDataspace()
    await ds.defineKind(KIND, { resident: false })
    const p = ds.process('p')
    await p.assert(KIND, 'w1', { pool: 'p' }, { ttl: 60_000 })
    assert.equal(ds.stats.records, 1)
    assert.equal((await ds.explain(KIND, {})).backend, undefined)
    await ds.close()
  })
})
