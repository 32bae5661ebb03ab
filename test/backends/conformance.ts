import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { WriteBatch } from '../../src/backends/index.js'
import type { Selector } from '../../src/model/types.js'
import type { BackendFactory } from './fixtures.js'
import {
  canonical,
  commit,
  compare,
  Model,
  prng,
  record,
  session,
  withStore,
  nextBatchId,
} from './fixtures.js'
import { queryConformance } from './query-conformance.js'

export type { BackendFactory, BackendHarness } from './fixtures.js'

const NO_KINDS_OR_SESSIONS = { kinds: [], sessions: { put: [], delete: [] } } as const

/**
 * The ONE suite every backend passes (Kysely's test-setup, looped over drivers). `factory` makes
 * a fresh, empty store for each test; capability-dependent tests skip at run time with the
 * reason when the backend does not claim the capability.
 *
 * @example
 * backendConformance('sqlite', async () => { … return { backend, reopen, cleanup } })
 */
export function backendConformance(name: string, factory: BackendFactory): void {
  describe(`backend conformance: ${name}`, () => {
    it('opens an empty store at revision 0', async () => {
      await withStore(factory, async (store) => {
        const { state } = await store.open()
        // `store` names the store where a backend gives it (several servers open it): optional.
        const { store: named, ...rest } = state
        assert.ok(named === undefined || typeof named === 'string')
        assert.deepEqual(rest, { revision: 0, records: [], kinds: [], sessions: [] })
      })
    })

    it('loads after reopen exactly what was written: records, kinds, sessions', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const a = record('svc', 'a', 1, {
          data: { spec: { pool: 'cpu' }, tags: ['x', 'y'], n: 1.5, ok: true, none: null },
          labels: { tier: 'web', 'app.kubernetes.io/name': 'api' },
          owner: '<n1.7>',
          expiresAt: 1_893_456_000_123,
        })
        const b = record('job', 'b/ü-✓', 2, { data: ['free', 2], owner: null })
        await backend.write({
          id: nextBatchId(),
          commits: [commit(1, [a]), commit(2, [b])],
          kinds: [
            { kind: 'svc', fields: ['spec.pool', 'tags'], indexes: ['spec.pool', 'tags'] },
            { kind: 'job', indexes: [] },
          ],
          sessions: { put: [session('s1'), session('s2')], delete: [] },
        })
        const first = await store.reopen()
        assert.deepEqual(canonical(first.state), {
          revision: 2,
          records: [b, a],
          kinds: [
            { kind: 'job', indexes: [] },
            { kind: 'svc', fields: ['spec.pool', 'tags'], indexes: ['spec.pool', 'tags'] },
          ],
          sessions: [session('s1'), session('s2')],
        })

        const a3 = record('svc', 'a', 3, { data: { spec: { pool: 'gpu' } }, createdRevision: 1 })
        const s2 = session('s2', {
          children: [{ pid: '<s2.1>', name: 'child' }],
          lastChild: 1,
          principal: 'ci-token',
        })
        await first.backend.write({
          id: nextBatchId(),
          commits: [commit(3, [a3])],
          kinds: [{ kind: 'svc', indexes: ['spec.pool'] }],
          sessions: { put: [s2], delete: ['s1'] },
        })
        const second = await store.reopen()
        assert.deepEqual(canonical(second.state), {
          revision: 3,
          records: [b, a3],
          kinds: [
            { kind: 'job', indexes: [] },
            { kind: 'svc', indexes: ['spec.pool'] },
          ],
          sessions: [s2],
        })
      })
    })

    it('deletes records, also ones created in the same batch', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const x = record('k', 'x', 1)
        const y = record('k', 'y', 1)
        await backend.write({
          id: nextBatchId(),
          commits: [commit(1, [x, y]), commit(2, [], [['k', 'x']])],
          ...NO_KINDS_OR_SESSIONS,
        })
        const z = record('k', 'z', 3)
        await backend.write({
          id: nextBatchId(),
          commits: [commit(3, [z]), commit(4, [], [['k', 'z']])],
          ...NO_KINDS_OR_SESSIONS,
        })
        const { state } = await store.reopen()
        assert.deepEqual(canonical(state), { revision: 4, records: [y], kinds: [], sessions: [] })
      })
    })

    it('makes a batch of many commits durable (group commit)', async (t) => {
      const seed = Number(process.env.BACKEND_SEED ?? Date.now() % 2 ** 31)
      t.diagnostic(`seed ${seed} (replay with BACKEND_SEED=${seed})`)
      const random = prng(seed)
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const model = new Model()
        const created = new Map<string, number>()
        const commits = []
        for (let revision = 1; revision <= 300; revision++) {
          const puts = []
          const removes: [string, string][] = []
          for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
            const id = `r${Math.floor(random() * 25)}`
            if (random() < 0.25) {
              removes.push(['many', id])
              created.delete(id)
            } else {
              const createdRevision = created.get(id) ?? revision
              created.set(id, createdRevision)
              puts.push(record('many', id, revision, { data: { v: random() }, createdRevision }))
            }
          }
          commits.push(commit(revision, puts, removes))
        }
        await backend.write({ id: nextBatchId(), commits, ...NO_KINDS_OR_SESSIONS })
        model.apply(commits)
        const { state } = await store.reopen()
        assert.equal(state.revision, 300)
        assert.deepEqual(
          canonical(state).records,
          canonical({ ...state, records: [...model.records.values()] }).records,
        )
      })
    })

    it('stores any JSON as data: null, scalars, arrays, nested objects', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const values: unknown[] = [null, 0, 'text', true, [1, null, 'x'], { a: { b: [null] } }]
        const records = values.map((data, i) => record('json', `r${i}`, i + 1, { data }))
        await backend.write({
          id: nextBatchId(),
          commits: records.map((r) => commit(r.revision, [r])),
          ...NO_KINDS_OR_SESSIONS,
        })
        const reopened = await store.reopen()
        assert.deepEqual(
          canonical(reopened.state).records,
          canonical({ ...reopened.state, records }).records,
        )
      })
    })

    it('accepts the same batch again (a retry whose answer was lost) without applying it twice', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const batch: WriteBatch = {
          id: nextBatchId(),
          commits: [commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'b', 2)])],
          ...NO_KINDS_OR_SESSIONS,
        }
        await backend.write(batch)
        await backend.write(batch)
        // The next batch changes what the first wrote: a replay applied again would undo it.
        const changed = record('k', 'a', 3, { data: { changed: true }, createdRevision: 1 })
        const next = record('k', 'c', 3)
        await backend.write({
          id: nextBatchId(),
          commits: [commit(3, [changed, next], [['k', 'b']])],
          ...NO_KINDS_OR_SESSIONS,
        })
        // Once a later batch is stored, the old one is no longer the last. A replay of it may be
        // refused, or recognised by its id (PostgreSQL, whose cluster nodes need it): either way
        // it applies nothing.
        await backend.write(batch).catch(() => undefined)
        const reopened = await store.reopen()
        assert.equal(reopened.state.revision, 3)
        assert.deepEqual(canonical(reopened.state).records, [changed, next])
      })
    })

    it('refuses a gap, a replay or an out-of-order revision, applying nothing', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const before = [record('k', 'a', 1), record('k', 'b', 2)]
        await backend.write({
          id: nextBatchId(),
          commits: [commit(1, [before[0]!]), commit(2, [before[1]!])],
          ...NO_KINDS_OR_SESSIONS,
        })
        const extras = {
          id: 'refused',
          kinds: [{ kind: 'late', indexes: ['x'] }],
          sessions: { put: [session('late')], delete: [] },
        }
        const refused: WriteBatch[] = [
          { commits: [commit(4, [record('k', 'c', 4)])], ...extras }, // gap after the stored 2
          { commits: [commit(2, [record('k', 'c', 2)])], ...extras }, // replay: a second writer
          {
            commits: [commit(3, [record('k', 'c', 3)]), commit(5, [record('k', 'd', 5)])],
            ...extras,
          },
          {
            commits: [commit(3, [record('k', 'c', 3)]), commit(3, [record('k', 'd', 3)])],
            ...extras,
          },
        ]
        for (const batch of refused) {
          await assert.rejects(
            backend.write(batch),
            `batch ${batch.commits.map((c) => c.revision).join(',')}`,
          )
        }
        const reopened = await store.reopen()
        assert.deepEqual(canonical(reopened.state), {
          revision: 2,
          records: before,
          kinds: [],
          sessions: [],
        })
        // The store is not stuck: the right next revision goes through.
        const c = record('k', 'c', 3)
        await reopened.backend.write({
          id: nextBatchId(),
          commits: [commit(3, [c])],
          ...NO_KINDS_OR_SESSIONS,
        })
        const { state } = await store.reopen()
        assert.deepEqual(canonical(state).records, [...before, c])
      })
    })

    it('reads the change feed with changesSince', async (t) => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        if (!store.capabilities.changes || backend.changesSince === undefined) {
          // The feed is what cluster mode (next issue) reads; SQLite, single-node only, keeps none.
          t.skip(
            `${name} keeps no change feed (capability changes is false; PostgreSQL runs this case)`,
          )
          return
        }
        const commits = [
          commit(1, [record('f', 'a', 1, { labels: { l: 'v' }, owner: 'p', expiresAt: 5_000 })]),
          commit(2, [record('f', 'b', 2), record('g', 'a', 2)]),
          commit(3, [], [['f', 'a']]),
          commit(4, [record('f', 'b', 4, { createdRevision: 2, data: [1, 'two', null] })]),
          commit(5, [record('f', 'c', 5)], [['g', 'a']]),
          // A refused commit is stored empty: it is in the feed, without changes.
          commit(6, []),
          commit(7, [record('f', 'd', 7)]),
        ]
        await backend.write({
          id: nextBatchId(),
          commits: commits.slice(0, 2),
          ...NO_KINDS_OR_SESSIONS,
        })
        await backend.write({
          id: nextBatchId(),
          commits: commits.slice(2),
          ...NO_KINDS_OR_SESSIONS,
        })
        const page = (slice: typeof commits) => ({
          trimmed: false,
          floor: 0,
          head: 7,
          commits: slice,
        })
        assert.deepEqual(await backend.changesSince(0, 100), page(commits))
        assert.deepEqual(await backend.changesSince(2, 2), page(commits.slice(2, 4)))
        assert.deepEqual(await backend.changesSince(4, 10), page(commits.slice(4)))
        assert.deepEqual(await backend.changesSince(5, 1), page(commits.slice(5, 6)))
        assert.deepEqual(await backend.changesSince(7, 10), page([]))
      })
    })

    it('keeps a non-resident kind in the store: counted per owner at open, found by query', async (t) => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const away = [
          record('away', 'a1', 1, { owner: 'p1', data: { pool: 'cpu' } }),
          record('away', 'a2', 1, { owner: 'p1', data: { pool: 'gpu' } }),
          record('away', 'a3', 1, { owner: 'p2', data: { pool: 'cpu' } }),
          record('away', 'a4', 1, { data: { pool: 'cpu' } }),
        ]
        const home = record('home', 'h1', 1, { owner: 'p1' })
        await backend.write({
          id: nextBatchId(),
          commits: [commit(1, [...away, home])],
          kinds: [
            { kind: 'away', indexes: ['pool'], resident: false },
            { kind: 'home', indexes: [] },
          ],
          sessions: { put: [], delete: [] },
        })
        const reopened = await store.reopen()
        assert.deepEqual(canonical(reopened.state).kinds, [
          { kind: 'away', indexes: ['pool'], resident: false },
          { kind: 'home', indexes: [] },
        ])
        if (!store.capabilities.query || reopened.backend.query === undefined) {
          t.skip(
            `${name} keeps every kind resident (capability query is false; SQLite and PostgreSQL run this case)`,
          )
          return
        }
        assert.deepEqual(reopened.state.records, [home])
        const owned = [...(reopened.state.owned ?? [])].sort((a, b) => compare(a.owner, b.owner))
        assert.deepEqual(owned, [
          { kind: 'away', owner: 'p1', count: 2 },
          { kind: 'away', owner: 'p2', count: 1 },
        ])
        const query = reopened.backend.query.bind(reopened.backend)
        const ids = async (selector: Selector): Promise<string[]> =>
          (await query('away', selector, { limit: 100 })).map((r) => r.id)
        assert.deepEqual(await query('away', {}, { limit: 100 }), away)
        assert.deepEqual(await ids({ owner: 'p1' }), ['a1', 'a2'])
        const cpu = (await ids({ fields: 'pool=cpu' })).filter((id) => id !== 'a2')
        assert.deepEqual(cpu, ['a1', 'a3', 'a4'])
      })
    })

    it('loads a resident kind, also one declared resident again', async () => {
      await withStore(factory, async (store) => {
        const { backend } = await store.open()
        const a = record('k', 'a', 1, { owner: 'p1' })
        await backend.write({
          id: nextBatchId(),
          commits: [commit(1, [a])],
          kinds: [{ kind: 'k', indexes: [], resident: false }],
          sessions: { put: [], delete: [] },
        })
        const first = await store.reopen()
        const b = record('k', 'b', 2)
        await first.backend.write({
          id: nextBatchId(),
          commits: [commit(2, [b])],
          kinds: [{ kind: 'k', indexes: [] }],
          sessions: { put: [], delete: [] },
        })
        const { state } = await store.reopen()
        assert.deepEqual(canonical(state), {
          revision: 2,
          records: [a, b],
          kinds: [{ kind: 'k', indexes: [] }],
          sessions: [],
        })
        assert.deepEqual(state.owned ?? [], [])
      })
    })

    queryConformance(name, factory)
  })
}
