// The PostgreSQL change feed is bounded (issue 12, "The feed is bounded"): `changes` is trimmed
// by age and by number of revisions, the trim point (the feed floor) is stored with the DELETE
// in one transaction, and `changesSince` below the floor reports the gap instead of skipping it.
// Needs PostgreSQL: it skips outside CI when none answers, and says why (test/postgres-env.ts).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { postgresBackend, SCHEMA_VERSION } from '../../src/backends/postgres/index.js'
import type { PostgresBackend, PostgresBackendOptions } from '../../src/backends/postgres/index.js'
import type { StoredCommit } from '../../src/backends/index.js'
import { InvalidArgument } from '../../src/errors/index.js'
import { until } from '../client/helpers.js'
import { commit, nextBatchId, record } from './fixtures.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'

const NOTHING_ELSE = { kinds: [], sessions: { put: [], delete: [] } } as const

/** No automatic trims: each test trims through `trimFeed` when it means to. */
const MANUAL = { feedTrimIntervalMs: Infinity } as const

function freshSchema(): string {
  return `ds_test_${randomBytes(6).toString('hex')}`
}

/** Commits 1..n; every third one is empty (a refused commit is stored that way). */
function commits(from: number, to: number): StoredCommit[] {
  const out: StoredCommit[] = []
  for (let r = from; r <= to; r++) {
    out.push(r % 3 === 0 ? commit(r, []) : commit(r, [record('f', `k${r}`, r)]))
  }
  return out
}

/** A backend on a fresh schema; `body` runs with it open, then everything is dropped. */
async function withFeed(
  options: Partial<PostgresBackendOptions>,
  body: (backend: PostgresBackend, schema: string) => Promise<void>,
): Promise<void> {
  const schema = freshSchema()
  const backend = postgresBackend({ url: POSTGRES_URL, schema, pool: { max: 4 }, ...options })
  try {
    await backend.open()
    await body(backend, schema)
  } finally {
    await backend.close()
    await dropSchema(schema)
  }
}

async function write(backend: PostgresBackend, batch: readonly StoredCommit[]): Promise<void> {
  await backend.write({ id: nextBatchId(), commits: batch, ...NOTHING_ELSE })
}

describe('postgres feed options', () => {
  const url = POSTGRES_URL
  it('refuses bounds that are not positive whole numbers (or Infinity) with InvalidArgument', () => {
    const bad: Partial<PostgresBackendOptions>[] = [
      { feedRetentionMs: 0 },
      { feedRetentionMs: -1 },
      { feedRetentionMs: Number.NaN },
      { feedRetentionMs: '60000' as unknown as number },
      { feedMaxRevisions: 0 },
      { feedMaxRevisions: 1.5 },
      { feedMaxRevisions: -3 },
      { feedTrimIntervalMs: -1 },
      { feedTrimIntervalMs: Number.NaN },
      { feedTrimRows: 0 },
      { feedTrimRows: 2.5 },
      { feedTrimRows: Infinity },
    ]
    for (const options of bad) {
      assert.throws(
        () => postgresBackend({ url, ...options }),
        (error: unknown) =>
          error instanceof InvalidArgument && error.message.includes(Object.keys(options)[0]!),
        JSON.stringify(options),
      )
    }
  })

  it('accepts Infinity to turn a bound off, and 0 to trim after every write', () => {
    postgresBackend({ url, feedRetentionMs: Infinity, feedMaxRevisions: Infinity })
    postgresBackend({ url, feedTrimIntervalMs: 0, feedTrimRows: 1 })
  })
})

describe('postgres feed', { skip: postgresSkip }, () => {
  it('returns every commit after a revision in order, empty ones included, limit in revisions', async () => {
    await withFeed(MANUAL, async (backend) => {
      const all = commits(1, 7)
      await write(backend, all.slice(0, 4))
      await write(backend, all.slice(4))
      assert.deepEqual(await backend.changesSince(0, 100), {
        trimmed: false,
        floor: 0,
        head: 7,
        commits: all,
      })
      const page = await backend.changesSince(2, 2)
      assert.deepEqual(page, { trimmed: false, floor: 0, head: 7, commits: all.slice(2, 4) })
      assert.deepEqual(await backend.changesSince(3, Infinity), {
        trimmed: false,
        floor: 0,
        head: 7,
        commits: all.slice(3),
      })
      assert.deepEqual(await backend.changesSince(3, 0), {
        trimmed: false,
        floor: 0,
        head: 7,
        commits: [],
      })
      await assert.rejects(backend.changesSince(-1, 10), InvalidArgument)
      assert.deepEqual(await backend.changesSince(7, 10), {
        trimmed: false,
        floor: 0,
        head: 7,
        commits: [],
      })
    })
  })

  it('trims by number of revisions and reports a resume point below the floor as trimmed', async () => {
    await withFeed({ ...MANUAL, feedMaxRevisions: 3 }, async (backend) => {
      const all = commits(1, 10)
      await write(backend, all)
      const trim = await backend.trimFeed()
      // Revisions 1..7 left the feed; 3 and 6 were empty, so 5 rows went.
      assert.deepEqual(trim, { floor: 7, deleted: 5, done: true })
      assert.deepEqual(await backend.changesSince(7, 100), {
        trimmed: false,
        floor: 7,
        head: 10,
        commits: all.slice(7),
      })
      for (const from of [0, 3, 6]) {
        assert.deepEqual(await backend.changesSince(from, 100), {
          trimmed: true,
          floor: 7,
          head: 10,
        })
      }
      // Nothing more to trim until the head moves.
      assert.deepEqual(await backend.trimFeed(), { floor: 7, deleted: 0, done: true })
      await write(backend, commits(11, 12))
      assert.equal((await backend.trimFeed()).floor, 9)
    })
  })

  it('deletes at most feedTrimRows rows per trim, whole commits, and says when more is left', async () => {
    await withFeed({ ...MANUAL, feedMaxRevisions: 1, feedTrimRows: 2 }, async (backend) => {
      const all = [
        commit(1, [record('f', 'a', 1)]),
        commit(2, [record('f', 'b', 2)]),
        commit(3, [record('f', 'c', 3), record('f', 'd', 3), record('f', 'e', 3)]),
        commit(4, []),
        commit(5, [record('f', 'g', 5)]),
        commit(6, [record('f', 'h', 6)]),
      ]
      await write(backend, all)
      assert.deepEqual(await backend.trimFeed(), { floor: 2, deleted: 2, done: false })
      // A commit is never split: its rows go together, even past the bound.
      assert.deepEqual(await backend.trimFeed(), { floor: 3, deleted: 3, done: false })
      assert.deepEqual(await backend.trimFeed(), { floor: 5, deleted: 1, done: true })
      assert.deepEqual(await backend.changesSince(5, 10), {
        trimmed: false,
        floor: 5,
        head: 6,
        commits: all.slice(5),
      })
    })
  })

  it('trims by age on the database clock', async () => {
    await withFeed({ ...MANUAL, feedRetentionMs: 60_000 }, async (backend, schema) => {
      const all = commits(1, 6)
      await write(backend, all.slice(0, 4))
      assert.deepEqual(await backend.trimFeed(), { floor: 0, deleted: 0, done: true })
      // Commits 1..4 were written an hour ago, as far as the feed can tell.
      await sql(
        `UPDATE "${schema}".changes SET committed_at = now() - interval '1 hour' WHERE revision <= 4`,
      )
      await write(backend, all.slice(4))
      // Revision 4 holds a row and is old: everything up to it goes.
      assert.deepEqual(await backend.trimFeed(), { floor: 4, deleted: 3, done: true })
      assert.deepEqual(await backend.changesSince(4, 10), {
        trimmed: false,
        floor: 4,
        head: 6,
        commits: all.slice(4),
      })
      assert.equal((await backend.changesSince(3, 10)).trimmed, true)
    })
  })

  it('trims old rows past the row bound over several trims', async () => {
    await withFeed(
      { ...MANUAL, feedRetentionMs: 60_000, feedTrimRows: 2 },
      async (backend, schema) => {
        const all = commits(1, 8)
        await write(backend, all)
        await sql(`UPDATE "${schema}".changes SET committed_at = now() - interval '1 hour'`)
        // Rows at 1, 2, 4, 5, 7, 8: two per trim, and each full window of old rows says more.
        assert.deepEqual(await backend.trimFeed(), { floor: 2, deleted: 2, done: false })
        assert.deepEqual(await backend.trimFeed(), { floor: 5, deleted: 2, done: false })
        assert.deepEqual(await backend.trimFeed(), { floor: 8, deleted: 2, done: false })
        assert.deepEqual(await backend.trimFeed(), { floor: 8, deleted: 0, done: true })
        assert.deepEqual(await backend.changesSince(8, 10), {
          trimmed: false,
          floor: 8,
          head: 8,
          commits: [],
        })
        assert.deepEqual(await backend.changesSince(7, 10), { trimmed: true, floor: 8, head: 8 })
      },
    )
  })

  it('advances the floor in the transaction of the DELETE: a failed trim moves nothing', async () => {
    await withFeed({ ...MANUAL, feedMaxRevisions: 2 }, async (backend, schema) => {
      const all = commits(1, 8)
      await write(backend, all)
      // The DELETE fails on its last row, after the others were deleted inside the transaction.
      await sql(`CREATE FUNCTION "${schema}".no_trim() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'no trimming revision 5'; END $$`)
      await sql(`CREATE TRIGGER no_trim BEFORE DELETE ON "${schema}".changes
        FOR EACH ROW WHEN (OLD.revision = 5) EXECUTE FUNCTION "${schema}".no_trim()`)
      await assert.rejects(backend.trimFeed(), /no trimming revision 5/)
      assert.deepEqual(await backend.changesSince(0, 100), {
        trimmed: false,
        floor: 0,
        head: 8,
        commits: all,
      })
      await sql(`DROP TRIGGER no_trim ON "${schema}".changes`)
      assert.deepEqual(await backend.trimFeed(), { floor: 6, deleted: 4, done: true })
    })
  })

  it('never shows a reader a trimmed feed above its floor while trims and writes run', async () => {
    await withFeed({ ...MANUAL, feedMaxRevisions: 5, feedTrimRows: 3 }, async (backend) => {
      const all = commits(1, 120)
      let written = 0
      let stop = false
      const writer = (async () => {
        for (let r = 1; r <= 120; r += 4) {
          await write(backend, all.slice(r - 1, r + 3))
          written = r + 3
          await backend.trimFeed()
        }
        stop = true
      })()
      let reads = 0
      let gaps = 0
      while (!stop) {
        for (const from of [0, Math.max(0, written - 8), Math.max(0, written - 3)]) {
          const page = await backend.changesSince(from, 1000)
          reads++
          if (page.trimmed) {
            assert.ok(from < page.floor, `trimmed at ${from} with floor ${page.floor}`)
            gaps++
            continue
          }
          assert.ok(from >= page.floor)
          assert.deepEqual(page.commits, all.slice(from, page.head))
        }
      }
      await writer
      assert.ok(reads > 0 && gaps > 0, `${reads} reads, ${gaps} gaps`)
    })
  })

  it('keeps the floor across a restart', async () => {
    const schema = freshSchema()
    const options = { url: POSTGRES_URL, schema, ...MANUAL, feedMaxRevisions: 4 }
    const first = postgresBackend(options)
    try {
      await first.open()
      await write(first, commits(1, 9))
      assert.equal((await first.trimFeed()).floor, 5)
      await first.close()
      const second = postgresBackend({ ...options, feedMaxRevisions: Infinity })
      try {
        await second.open()
        assert.deepEqual(await second.changesSince(4, 10), { trimmed: true, floor: 5, head: 9 })
        assert.deepEqual(await second.changesSince(5, 10), {
          trimmed: false,
          floor: 5,
          head: 9,
          commits: commits(6, 9),
        })
        await write(second, commits(10, 10))
        assert.deepEqual(await second.trimFeed(), { floor: 5, deleted: 0, done: true })
      } finally {
        await second.close()
      }
    } finally {
      await first.close()
      await dropSchema(schema)
    }
  })

  it('trims on its own after writes, at most once per interval, off the write path', async () => {
    await withFeed({ feedTrimIntervalMs: 0, feedMaxRevisions: 2 }, async (backend) => {
      for (let r = 1; r <= 20; r++) await write(backend, commits(r, r))
      let page = await backend.changesSince(18, 10)
      await until(
        async () => (page = await backend.changesSince(18, 10)).floor >= 18,
        5000,
        'the automatic trim',
      )
      assert.deepEqual(page, { trimmed: false, floor: 18, head: 20, commits: commits(19, 20) })
    })
  })
})

describe('postgres feed reasons', { skip: postgresSkip }, () => {
  it('keeps why a record was removed, and nothing for an upsert', async () => {
    await withFeed(MANUAL, async (backend) => {
      await write(backend, [commit(1, [record('f', 'a', 1), record('f', 'b', 1)])])
      const removals: StoredCommit = {
        revision: 2,
        changes: [
          { kind: 'f', id: 'a', after: undefined, reason: 'expired' },
          { kind: 'f', id: 'b', after: undefined },
          { kind: 'f', id: 'c', after: record('f', 'c', 2) },
        ],
      }
      await write(backend, [removals])
      const page = await backend.changesSince(1, 10)
      assert.deepEqual(page, { trimmed: false, floor: 0, head: 2, commits: [removals] })
      assert.ok(!page.trimmed && !('reason' in page.commits[0]!.changes[2]!))
      assert.ok(!page.trimmed && !('reason' in page.commits[0]!.changes[1]!))
    })
  })

  it('migrates a schema of version 7: older removals read without a reason', async () => {
    const schema = freshSchema()
    const options = { url: POSTGRES_URL, schema, ...MANUAL }
    const first = postgresBackend(options)
    try {
      await first.open()
      await write(first, [commit(1, [record('f', 'a', 1)]), commit(2, [], [['f', 'a']])])
      await first.close()
      // Back to version 7: no reason column, so the removal at 2 has none, no batches table
      // (migration 9), no session leases (migration 10, which replaces write_batch's
      // arguments: migration 8 creates the old one again).
      await sql(`ALTER TABLE "${schema}".changes DROP COLUMN reason`)
      await sql(`DROP TABLE "${schema}".batches`)
      await sql(`ALTER TABLE "${schema}".sessions DROP COLUMN node, DROP COLUMN reap_at`)
      await sql(`DROP INDEX "${schema}".ds_sessions_expires`)
      await sql(
        `DROP FUNCTION "${schema}".write_batch(text, bigint, bigint, jsonb, jsonb, jsonb, jsonb,
           jsonb, text[], jsonb, jsonb, text, jsonb, jsonb)`,
      )
      await sql(`DELETE FROM "${schema}".migrations WHERE version > 7`)
      const second = postgresBackend(options)
      try {
        await second.open()
        assert.deepEqual(
          (
            await sql<{ version: number }>(
              `SELECT max(version) AS version FROM "${schema}".migrations`,
            )
          )[0]?.version,
          SCHEMA_VERSION,
        )
        assert.equal(SCHEMA_VERSION, 10)
        const removed: StoredCommit = {
          revision: 3,
          changes: [{ kind: 'f', id: 'a', after: undefined, reason: 'owner-exit' }],
        }
        await write(second, [removed])
        assert.deepEqual(await second.changesSince(0, 10), {
          trimmed: false,
          floor: 0,
          head: 3,
          commits: [commit(1, [record('f', 'a', 1)]), commit(2, [], [['f', 'a']]), removed],
        })
      } finally {
        await second.close()
      }
    } finally {
      await first.close()
      await dropSchema(schema)
    }
  })
})
