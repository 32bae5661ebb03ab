// A batch a backend refuses for its content (a value it cannot store, a constraint) is never
// retried forever (issue 10, item 2): the refused commit's writers get an error, every other
// write of the batch and after it becomes durable, revisions stay gap-free, and the dataspace's
// state (and every watcher's view) equals what a fresh open loads from the store.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import pg from 'pg'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend, StoredSession, WriteBatch } from '../../src/backends/index.js'
import type { DataspaceRecord, WatchEvent } from '../../src/model/types.js'
import { InvalidArgument } from '../../src/errors/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { SessionStore } from '../../src/server/session-store.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-refused-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/** One store (a file, a schema) that tests open, reopen, and can make refuse a marker. */
interface Store {
  /** A new backend over this store, not yet opened. */
  backend(): Backend
  /** Makes the database itself refuse any record whose data holds the key `poison`. */
  refuseInDatabase(): Promise<void>
  cleanup(): Promise<void>
}

interface Target {
  readonly name: string
  readonly skip: string | false
  store(): Store
  /** A record value that this database refuses today, without any help. */
  readonly unstorable: { readonly data: unknown; readonly ttl?: number }
}

const targets: readonly Target[] = [
  {
    name: 'sqlite',
    skip: false,
    // STRICT tables: `expires_at = now + 1500.5` is REAL in an INTEGER column.
    unstorable: { data: { n: 1 }, ttl: 1500.5 },
    store() {
      const path = join(dir, `${++files}.db`)
      return {
        backend: () => sqliteBackend({ path }),
        async refuseInDatabase() {
          const db = new Database(path)
          try {
            for (const event of ['INSERT', 'UPDATE']) {
              db.exec(`CREATE TRIGGER refuse_poison_${event} BEFORE ${event} ON records
                       WHEN json_extract(NEW.data, '$.poison') IS NOT NULL
                       BEGIN SELECT RAISE(ABORT, 'poison is refused by a trigger'); END`)
            }
          } finally {
            db.close()
          }
        },
        async cleanup() {
          for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
        },
      }
    },
  },
  {
    name: 'postgres',
    skip: postgresSkip,
    // jsonb cannot hold U+0000.
    unstorable: { data: { text: 'a\u0000b' } },
    store() {
      const schema = `ds_test_${randomBytes(6).toString('hex')}`
      return {
        backend: () => postgresBackend({ url: POSTGRES_URL, schema, pool: { max: 4 } }),
        async refuseInDatabase() {
          const client = new pg.Client({ connectionString: POSTGRES_URL })
          await client.connect()
          try {
            await client.query(
              `ALTER TABLE "${schema}".records ADD CONSTRAINT refuse_poison CHECK (NOT data ? 'poison')`,
            )
          } finally {
            await client.end()
          }
        },
        cleanup: () => dropSchema(schema),
      }
    },
  },
]

/**
 * A real backend behind a test double that refuses, as a database CHECK would, every batch in
 * which a record's data holds the key `poison` (with `InvalidArgument`, the error a backend
 * throws for content it checks itself). Everything else goes to the real backend.
 */
function refusing(inner: Backend): Backend & { refusals: number } {
  const wrapper = {
    name: inner.name,
    capabilities: inner.capabilities,
    refusals: 0,
    open: () => inner.open(),
    async write(batch: WriteBatch) {
      const poisoned = batch.commits.some((commit) =>
        commit.changes.some((change) => isPoison(change.after)),
      )
      if (poisoned) {
        wrapper.refusals++
        throw new InvalidArgument(`${inner.name}: data with a "poison" key is refused (test)`)
      }
      await inner.write(batch)
    },
    ...(inner.query === undefined ? {} : { query: inner.query.bind(inner) }),
    ...(inner.explainQuery === undefined ? {} : { explainQuery: inner.explainQuery.bind(inner) }),
    close: () => inner.close(),
  }
  return wrapper
}

function isPoison(record: DataspaceRecord | undefined): boolean {
  const data = record?.data
  return typeof data === 'object' && data !== null && 'poison' in data
}

/** Rejects when `promise` has not settled within `ms`: a refusal must not wait for a timeout. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A watcher's view: the records it was told about, by id, and the last revision it saw. */
class WatchView {
  readonly records = new Map<string, DataspaceRecord>()
  revision = 0
  readonly done: Promise<void>

  constructor(events: AsyncIterable<WatchEvent>) {
    this.done = (async () => {
      for await (const event of events) {
        switch (event.type) {
          case 'snapshot':
            this.records.clear()
            for (const record of event.records) this.records.set(record.id, record)
            this.revision = event.revision
            break
          case 'asserted':
            this.records.set(event.record.id, event.record)
            this.revision = event.revision
            break
          case 'retracted':
            this.records.delete(event.record.id)
            this.revision = event.revision
            break
          case 'message':
          case 'reset':
            // A reset is followed by a snapshot, which replaces the view.
            break
          default:
            event satisfies never
        }
      }
    })()
  }

  async caughtUp(revision: number): Promise<void> {
    const deadline = Date.now() + 5_000
    while (this.revision < revision) {
      if (Date.now() > deadline) throw new Error(`watch stuck at ${this.revision} < ${revision}`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    // A commit's events reach the view one by one, each after a durability check (a promise
    // hop): let the rest of this revision's events arrive before anyone compares.
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const byId = (records: readonly DataspaceRecord[]): Map<string, DataspaceRecord> =>
  new Map(records.map((record) => [record.id, record]))

const KIND = 'cfg'
// Long, so that a writer answered `Unavailable` by the timeout, not by the refusal, fails `within`.
const DURABLE_TIMEOUT_MS = 30_000
const BOUND_MS = 5_000
/** The runtime's warnings (a refused batch, a refused commit) are expected here. */
const quiet = { warn: () => undefined }

/** The state a store holds, read by a fresh dataspace; `ds` must be closed first. */
async function stored(store: Store): Promise<{
  revision: number
  records: Map<string, DataspaceRecord>
  kinds: readonly string[]
  sessions: readonly StoredSession[]
}> {
  const fresh = await openDataspace({ backend: store.backend() })
  try {
    return {
      revision: fresh.revision,
      records: byId((await fresh.list(KIND)).items),
      kinds: [...fresh.storesOf].map((s) => s.kind),
      sessions: new SessionStore(fresh).restoredSessions,
    }
  } finally {
    await fresh.close()
  }
}

/** Checks that `ds`'s state and `view` equal what the store holds, then closes `ds`. */
async function closeAndCompare(ds: Dataspace, view: WatchView, store: Store): Promise<void> {
  const revision = ds.revision
  const listed = byId((await ds.list(KIND)).items)
  await view.caughtUp(revision)
  assert.deepEqual(view.records, listed, "the watcher's view equals list()")
  await within(BOUND_MS, 'close', ds.close())
  const state = await stored(store)
  // Closing retracts the watch's `$watch` record: one commit more, in no kind compared here.
  assert.equal(state.revision, revision + 1, 'the stored revision is the engine revision (no gap)')
  assert.equal(ds.revision, revision + 1)
  assert.deepEqual(state.records, listed, 'list() equals what a fresh open loads')
}

for (const target of targets) {
  describe(`refused writes on ${target.name}`, { skip: target.skip }, () => {
    it('fails only the refused commit of a batch: the rest and later writes are durable, state equals stored', async () => {
      const store = target.store()
      const backend = refusing(store.backend())
      const ds = await openDataspace({ backend, durableTimeoutMs: DURABLE_TIMEOUT_MS, log: quiet })
      try {
        const a = ds.process('a')
        const b = ds.process('b')
        const view = new WatchView(ds.watch(KIND))
        const opts = { owner: null } as const
        await a.assert(KIND, 'x', { v: 1 }, opts)
        await b.assert(KIND, 'y', { v: 1 }, opts)
        await a.assert(KIND, 'gone', { v: 1 }, opts)
        await a.assert(KIND, 'twice', { v: 1 }, opts)
        const before = ds.revision

        // One turn, so one batch: good and refused commits interleaved, on shared keys too.
        const writes = {
          goodX: a.assert(KIND, 'x', { v: 2 }, opts),
          badY: b.assert(KIND, 'y', { poison: 1 }, opts),
          badNew: b.assert(KIND, 'new', { poison: 2 }, opts),
          badTx: b.transact({
            then: [
              { op: 'assert', kind: KIND, id: 'tx-good', data: { v: 1 }, owner: null },
              { op: 'retract', kind: KIND, id: 'gone' },
              { op: 'assert', kind: KIND, id: 'tx-bad', data: { poison: 3 }, owner: null },
            ],
          }),
          badZ: b.assert(KIND, 'z', { poison: 4 }, opts),
          goodZ: a.assert(KIND, 'z', { v: 5 }, opts),
          goodW: a.assert(KIND, 'w', { v: 1 }, opts),
          // Two refused commits in a row on one key: it goes back past both.
          badTwice1: b.assert(KIND, 'twice', { poison: 5 }, opts),
          badTwice2: b.assert(KIND, 'twice', { poison: 6 }, opts),
        }
        const settled = await within(
          BOUND_MS,
          'the batch',
          Promise.allSettled(Object.values(writes)),
        )
        const outcome = Object.fromEntries(
          Object.keys(writes).map((name, i) => [name, settled[i]!.status]),
        )
        assert.deepEqual(outcome, {
          goodX: 'fulfilled',
          badY: 'rejected',
          badNew: 'rejected',
          badTx: 'rejected',
          badZ: 'rejected',
          goodZ: 'fulfilled',
          goodW: 'fulfilled',
          badTwice1: 'rejected',
          badTwice2: 'rejected',
        })
        for (const result of settled) {
          if (result.status !== 'rejected') continue
          const error = result.reason as InvalidArgument
          assert.ok(error instanceof InvalidArgument, `InvalidArgument, got ${String(error)}`)
          assert.match(error.message, new RegExp(`${target.name}.*refused`))
        }
        assert.ok(ds.revision > before + 7, 'every commit kept its revision')

        // The refused commits are undone in memory: each key is what the store holds.
        assert.deepEqual((await ds.get(KIND, 'y'))?.data, { v: 1 })
        assert.equal(await ds.get(KIND, 'new'), undefined)
        assert.equal(await ds.get(KIND, 'tx-good'), undefined)
        assert.equal(await ds.get(KIND, 'tx-bad'), undefined)
        assert.deepEqual((await ds.get(KIND, 'gone'))?.data, { v: 1 })
        assert.deepEqual((await ds.get(KIND, 'z'))?.data, { v: 5 })
        assert.deepEqual((await ds.get(KIND, 'x'))?.data, { v: 2 })
        assert.deepEqual((await ds.get(KIND, 'twice'))?.data, { v: 1 })

        // Nothing is wedged: a later write from anyone is durable at once.
        await within(BOUND_MS, 'a later write', b.assert(KIND, 'after', { v: 1 }, opts))
        await closeAndCompare(ds, view, store)
        await view.done
      } finally {
        await ds.close().catch(() => undefined)
        await store.cleanup()
      }
    })

    it('does not bring back a record whose owner exited since the refused commit', async () => {
      const store = target.store()
      const ds = await openDataspace({
        backend: refusing(store.backend()),
        durableTimeoutMs: DURABLE_TIMEOUT_MS,
        log: quiet,
      })
      try {
        const view = new WatchView(ds.watch(KIND))
        const p = ds.process('p')
        await p.assert(KIND, 'owned', { v: 1 })
        // One turn: p retracts its record in a refused commit, then exits.
        const bad = p.transact({
          then: [
            { op: 'retract', kind: KIND, id: 'owned' },
            { op: 'assert', kind: KIND, id: 'bad', data: { poison: true }, owner: null },
          ],
        })
        const exited = p.exit()
        await assert.rejects(within(BOUND_MS, 'the refused write', bad), InvalidArgument)
        await within(BOUND_MS, 'the exit', exited)
        await within(
          BOUND_MS,
          'a later write',
          ds.process('q').assert(KIND, 'q', { v: 1 }, { owner: null }),
        )
        assert.equal(await ds.get(KIND, 'owned'), undefined, 'it went with its owner')
        await closeAndCompare(ds, view, store)
      } finally {
        await ds.close().catch(() => undefined)
        await store.cleanup()
      }
    })

    it('keeps the kinds and sessions of a refused batch', async () => {
      const store = target.store()
      const ds = await openDataspace({
        backend: refusing(store.backend()),
        durableTimeoutMs: DURABLE_TIMEOUT_MS,
        log: quiet,
      })
      try {
        const view = new WatchView(ds.watch(KIND))
        const p = ds.process('p')
        const session: StoredSession = {
          id: 's1',
          resumeTokenHash: 'ab'.repeat(32),
          pid: `${ds.node}/remote#900`,
          name: 'remote',
          ttl: 30_000,
          children: [],
          lastChild: 0,
          principal: null,
        }
        const kind = ds.defineKind('svc', { indexes: ['pool'] })
        new SessionStore(ds).persist(session)
        const bad = p.assert(KIND, 'k', { poison: true }, { owner: null })
        const good = p.assert(KIND, 'g', { v: 1 }, { owner: null })
        await kind
        await assert.rejects(within(BOUND_MS, 'the refused write', bad), InvalidArgument)
        await within(BOUND_MS, 'the good write', good)
        await closeAndCompare(ds, view, store)
        const state = await stored(store)
        assert.ok(state.kinds.includes('svc'), 'the kind declared in the refused batch is stored')
        assert.deepEqual(
          state.sessions.map((s) => s.id),
          ['s1'],
        )
      } finally {
        await ds.close().catch(() => undefined)
        await store.cleanup()
      }
    })

    it('recovers when the database itself refuses a record (a constraint)', async () => {
      const store = target.store()
      await (await openDataspace({ backend: store.backend() })).close()
      await store.refuseInDatabase()
      const ds = await openDataspace({
        backend: store.backend(),
        durableTimeoutMs: DURABLE_TIMEOUT_MS,
        log: quiet,
      })
      try {
        const view = new WatchView(ds.watch(KIND))
        const a = ds.process('a')
        await a.assert(KIND, 'x', { v: 1 }, { owner: null })
        const bad = a.assert(KIND, 'x', { poison: true }, { owner: null })
        const good = a.assert(KIND, 'y', { v: 1 }, { owner: null })
        const error = await within(BOUND_MS, 'the refused write', bad).then(
          () => assert.fail('the refused write was acknowledged'),
          (e: unknown) => e,
        )
        assert.ok(error instanceof InvalidArgument, `InvalidArgument, got ${String(error)}`)
        assert.match(error.message, new RegExp(target.name))
        await within(BOUND_MS, 'the good write', good)
        assert.deepEqual((await ds.get(KIND, 'x'))?.data, { v: 1 })
        await within(BOUND_MS, 'a later write', a.assert(KIND, 'z', { v: 1 }, { owner: null }))
        await closeAndCompare(ds, view, store)
      } finally {
        await ds.close().catch(() => undefined)
        await store.cleanup()
      }
    })

    it('recovers from a value this database cannot store', async () => {
      const store = target.store()
      const ds = await openDataspace({
        backend: store.backend(),
        durableTimeoutMs: DURABLE_TIMEOUT_MS,
        log: quiet,
      })
      try {
        const view = new WatchView(ds.watch(KIND))
        const a = ds.process('a')
        const { data, ttl } = target.unstorable
        // Refused here or, once values are checked at the edge, before: the writer gets an
        // error either way, and nothing else is disturbed.
        const bad = a.assert(KIND, 'bad', data, {
          owner: null,
          ...(ttl === undefined ? {} : { ttl }),
        })
        const good = a.assert(KIND, 'good', { v: 1 }, { owner: null })
        await assert.rejects(within(BOUND_MS, 'the refused write', bad), InvalidArgument)
        await within(BOUND_MS, 'the good write', good)
        assert.equal(await ds.get(KIND, 'bad'), undefined)
        await within(BOUND_MS, 'a later write', a.assert(KIND, 'later', { v: 1 }, { owner: null }))
        await closeAndCompare(ds, view, store)
      } finally {
        await ds.close().catch(() => undefined)
        await store.cleanup()
      }
    })
  })
}

describe('refused writes: random turns on sqlite (property)', () => {
  it('after any mix of refused and good writes, state and watchers equal the store', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31)
    console.log(`refused-writes property seed=${seed} (rerun with SEED=${seed})`)
    const op = fc.record({
      writer: fc.integer({ min: 0, max: 2 }),
      id: fc.constantFrom('a', 'b', 'c', 'd'),
      action: fc.constantFrom('put', 'poison', 'retract', 'pair'),
      n: fc.integer({ min: 0, max: 99 }),
    })
    const turns = fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), {
      minLength: 1,
      maxLength: 5,
    })
    await fc.assert(
      fc.asyncProperty(turns, async (plan) => {
        const store = targets[0]!.store()
        const ds = await openDataspace({
          backend: refusing(store.backend()),
          durableTimeoutMs: DURABLE_TIMEOUT_MS,
          log: quiet,
        })
        try {
          const view = new WatchView(ds.watch(KIND))
          const procs = [ds.process('p0'), ds.process('p1'), ds.process('p2')]
          const opts = { owner: null } as const
          for (const turn of plan) {
            const writes = turn.map(({ writer, id, action, n }) => {
              const p = procs[writer]!
              const poisoned = action === 'poison'
              const write =
                action === 'retract'
                  ? p.retract(KIND, id)
                  : action === 'pair'
                    ? p.transact({
                        then: [
                          { op: 'assert', kind: KIND, id, data: { n }, owner: null },
                          {
                            op: 'assert',
                            kind: KIND,
                            id: `${id}2`,
                            data: { poison: n },
                            owner: null,
                          },
                        ],
                      })
                    : p.assert(KIND, id, poisoned ? { poison: n } : { n }, opts)
              return { refused: poisoned || action === 'pair', write }
            })
            const settled = await within(
              BOUND_MS,
              'a turn',
              Promise.allSettled(writes.map((w) => w.write)),
            )
            settled.forEach((result, i) => {
              if (writes[i]!.refused) {
                assert.equal(result.status, 'rejected')
                assert.ok(result.reason instanceof InvalidArgument)
              } else if (result.status === 'rejected') {
                // A retract of a missing record: NotFound, decided in memory.
                assert.equal((result.reason as { code?: string }).code, 'NotFound')
              }
            })
          }
          for (const { poison } of [...byId((await ds.list(KIND)).items).values()].map(
            (r) => r.data as { poison?: unknown },
          )) {
            assert.equal(poison, undefined, 'no refused content stays in memory')
          }
          await closeAndCompare(ds, view, store)
        } finally {
          await ds.close().catch(() => undefined)
          await store.cleanup()
        }
      }),
      { seed, numRuns: 25 },
    )
  })

  it('retries a transient failure whole: nobody is refused', async () => {
    const store = targets[0]!.store()
    const inner = store.backend()
    let failures = 1
    const flaky: Backend = {
      ...refusing(inner),
      async write(batch: WriteBatch) {
        if (failures-- > 0)
          throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })
        await inner.write(batch)
      },
    }
    const ds = await openDataspace({
      backend: flaky,
      durableTimeoutMs: DURABLE_TIMEOUT_MS,
      log: quiet,
    })
    try {
      const p = ds.process('p')
      await within(
        BOUND_MS,
        'writes across a transient failure',
        Promise.all([
          p.assert(KIND, 'a', { n: 1 }, { owner: null }),
          p.assert(KIND, 'b', { n: 2 }, { owner: null }),
        ]),
      )
      assert.equal((await ds.list(KIND)).items.length, 2)
    } finally {
      await ds.close().catch(() => undefined)
      await store.cleanup()
    }
  })
})
