// A PostgreSQL follower (docs/backends.md, "Followers"): a second server opens the writer's
// schema with `follow: true`, takes no lock, never writes, hears the writer's doorbell (NOTIFY
// after each write) and reads its commits, removal reasons included, from the feed.
// Needs PostgreSQL: it skips outside CI when none answers, and says why (test/postgres-env.ts).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import pg from 'pg'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import type { PostgresBackend, PostgresBackendOptions } from '../../src/backends/postgres/index.js'
import type { StoredCommit, WriteBatch } from '../../src/backends/index.js'
import { InvalidArgument, Unavailable } from '../../src/errors/index.js'
import { sleep, until } from '../client/helpers.js'
import { commit, nextBatchId, record, session } from './fixtures.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'

const NOTHING_ELSE = { kinds: [], sessions: { put: [], delete: [] } } as const

function freshSchema(): string {
  return `ds_follow_${randomBytes(6).toString('hex')}`
}

function batch(commits: readonly StoredCommit[]): WriteBatch {
  return { id: nextBatchId(), commits, ...NOTHING_ELSE }
}

/** Counts rings; `next` is a promise of the next one, failing after a generous bound. */
class Bell {
  rings = 0
  #waiters: (() => void)[] = []

  readonly ring = (): void => {
    this.rings++
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /** Call it before what should ring, then await it. */
  next(what: string, ms = 5_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ring ${what} within ${ms} ms`)), ms)
      this.#waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}

/**
 * A writer on a fresh schema and `followers` followers on it, all open; `body` runs with them,
 * then everything is closed and the schema dropped.
 */
async function withCluster(
  followers: number,
  body: (writer: PostgresBackend, followers: PostgresBackend[], schema: string) => Promise<void>,
  options: Partial<PostgresBackendOptions> = {},
  schema = freshSchema(),
): Promise<void> {
  const base = { url: POSTGRES_URL, schema, pool: { max: 3 }, ...options }
  const writer = postgresBackend(base)
  const opened: PostgresBackend[] = []
  try {
    await writer.open()
    for (let i = 0; i < followers; i++) {
      const follower = postgresBackend({ ...base, follow: true })
      opened.push(follower)
      await follower.open()
    }
    await body(writer, opened, schema)
  } finally {
    for (const follower of opened) await follower.close()
    await writer.close()
    await dropSchema(schema)
  }
}

/** The follower connections of `schema` on the database (their application_name names it). */
async function followerConnections(schema: string): Promise<number[]> {
  const rows = await sql<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1`,
    [`dataspace follower schema=${schema} %`],
  )
  return rows.map((row) => row.pid)
}

/** A plain LISTEN on a channel, collecting payloads. */
async function rawListen(channel: string): Promise<{ payloads: string[]; client: pg.Client }> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  const payloads: string[] = []
  client.on('notification', (message) => payloads.push(message.payload ?? ''))
  await client.connect()
  await client.query(`LISTEN "${channel}"`)
  return { payloads, client }
}

describe('postgres follower options', () => {
  it('refuses a follow that is not a boolean with InvalidArgument', () => {
    for (const follow of ['yes', 1, null]) {
      assert.throws(
        () => postgresBackend({ url: POSTGRES_URL, follow: follow as unknown as boolean }),
        (error: unknown) => error instanceof InvalidArgument && /follow/.test(error.message),
        String(follow),
      )
    }
    postgresBackend({ url: POSTGRES_URL, follow: false })
  })

  it('a writer has no follower seam; a follower has one', () => {
    const writer = postgresBackend({ url: POSTGRES_URL })
    assert.equal(writer.follower, undefined)
    assert.ok(!('follower' in writer))
    assert.equal(typeof postgresBackend({ url: POSTGRES_URL, follow: true }).follower, 'object')
  })

  it('rejects the first listen when the database does not answer', async () => {
    const follower = postgresBackend({
      url: 'postgres://postgres@127.0.0.1:1/test',
      follow: true,
      pool: { connectionTimeoutMillis: 2_000 },
    })
    await assert.rejects(follower.follower!.listen(() => undefined))
    await follower.close()
  })
})

describe('postgres follower', { skip: postgresSkip }, () => {
  it('opens beside the writer without a lock, as many as wanted; a second writer is refused', async () => {
    await withCluster(2, async (writer, [first, second], schema) => {
      await writer.write(batch([commit(1, [record('k', 'a', 1)])]))
      const third = postgresBackend({ url: POSTGRES_URL, schema, follow: true })
      try {
        const state = await third.open()
        assert.equal(state.revision, 1)
      } finally {
        await third.close()
      }
      const rival = postgresBackend({ url: POSTGRES_URL, schema })
      await assert.rejects(rival.open(), (error: unknown) => {
        assert.ok(error instanceof Unavailable, String(error))
        assert.match(error.message, /in use by another dataspace server/)
        return true
      })
      await rival.close()
      // The writer still holds the schema, and the followers still read it.
      await writer.write(batch([commit(2, [record('k', 'b', 2)])]))
      for (const follower of [first!, second!]) {
        const page = await follower.changesSince(0, 10)
        assert.equal(page.trimmed === false && page.head, 2)
      }
    })
  })

  it("loads the writer's records and kinds but none of its sessions, and never writes", async () => {
    await withCluster(0, async (writer, _, schema) => {
      await writer.write({
        id: nextBatchId(),
        commits: [
          commit(1, [
            record('k', 'a', 1, { owner: 's1' }),
            record('away', 'x', 1, { owner: 's1' }),
          ]),
        ],
        kinds: [
          { kind: 'k', fields: ['n'], indexes: ['n'] },
          { kind: 'away', indexes: [], resident: false },
        ],
        sessions: { put: [session('s1')], delete: [] },
        answers: { put: [{ session: 's1', call: 1, revision: 1, value: '"ok"' }], delete: [] },
      })
      const follower = postgresBackend({ url: POSTGRES_URL, schema, follow: true })
      try {
        const state = await follower.open()
        assert.equal(state.revision, 1)
        assert.deepEqual(
          state.records.map((r) => r.id),
          ['a'],
        )
        assert.deepEqual(state.owned, [{ kind: 'away', owner: 's1', count: 1 }])
        // The writer stored a session and an answer: they are its own, not the follower's.
        assert.equal((await sql(`SELECT 1 FROM "${schema}".sessions`)).length, 1)
        assert.deepEqual(state.sessions, [])
        assert.equal(state.answers, undefined)
        assert.deepEqual(await follower.follower!.kinds(), [
          { kind: 'away', indexes: [], resident: false },
          { kind: 'k', fields: ['n'], indexes: ['n'] },
        ])
        const refused = (error: unknown): boolean => {
          assert.ok(error instanceof Unavailable, String(error))
          assert.match(error.message, new RegExp(`follows schema "${schema}" \\(follow: true\\)`))
          return true
        }
        await assert.rejects(follower.write(batch([commit(2, [record('k', 'b', 2)])])), refused)
        await assert.rejects(
          follower.write({
            id: nextBatchId(),
            commits: [],
            kinds: [],
            sessions: { put: [session('s2')], delete: [] },
          }),
          refused,
        )
        await assert.rejects(follower.trimFeed(), refused)
        // Nothing of those reached the store.
        assert.equal((await sql(`SELECT 1 FROM "${schema}".sessions WHERE id = 's2'`)).length, 0)
        const page = await writer.changesSince(0, 10)
        assert.equal(page.trimmed === false && page.head, 1)
      } finally {
        await follower.close()
      }
    })
  })

  it("rings after the writer's writes, and reads its commits with their reasons", async () => {
    await withCluster(2, async (writer, followers) => {
      const bells = followers.map(() => new Bell())
      const stops = await Promise.all(
        followers.map((follower, i) => follower.follower!.listen(bells[i]!.ring)),
      )
      try {
        const put = commit(1, [record('k', 'a', 1), record('k', 'b', 1)])
        const removed: StoredCommit = {
          revision: 2,
          changes: [
            { kind: 'k', id: 'a', after: undefined, reason: 'expired' },
            { kind: 'k', id: 'b', after: undefined, reason: 'owner-exit' },
          ],
        }
        let rung = Promise.all(bells.map((bell) => bell.next('after the first write')))
        await writer.write(batch([put]))
        await rung
        rung = Promise.all(bells.map((bell) => bell.next('after the second write')))
        await writer.write(batch([removed]))
        await rung
        for (const follower of followers) {
          assert.deepEqual(await follower.changesSince(0, 10), {
            trimmed: false,
            floor: 0,
            head: 2,
            commits: [put, removed],
          })
        }
      } finally {
        for (const stop of stops) await stop()
      }
    })
  })

  it('rings with the last revision after writes with commits, a retry included', async () => {
    await withCluster(0, async (writer, _, schema) => {
      // The channel is documented (docs/backends.md, "Followers"): ds_feed_<schema>.
      const { payloads, client } = await rawListen(`ds_feed_${schema}`)
      try {
        const first = batch([commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'b', 2)])])
        await writer.write(first)
        await until(() => payloads.length === 1, 5_000, 'the first ring')
        assert.deepEqual(payloads, ['2'])
        // A retry of the batch stored last rings again (its first COMMIT's answer may have been
        // lost before the ring); a batch without commits does not ring.
        await writer.write(first)
        await until(() => payloads.length === 2, 5_000, 'the ring of the retry')
        await writer.write({
          id: nextBatchId(),
          commits: [],
          kinds: [{ kind: 'k', indexes: [] }],
          sessions: { put: [], delete: [] },
        })
        await writer.write(batch([commit(3, [record('k', 'c', 3)])]))
        await until(() => payloads.length >= 3, 5_000, 'the third ring')
        assert.deepEqual(payloads, ['2', '2', '3'])
      } finally {
        await client.end()
      }
    })
  })

  it('rings on a 63-byte schema, whose channel name is shortened', async () => {
    const schema = `ds_follow_${randomBytes(6).toString('hex')}`.padEnd(63, 'x')
    await withCluster(
      1,
      async (writer, [follower]) => {
        const bell = new Bell()
        const stop = await follower!.follower!.listen(bell.ring)
        try {
          const rung = bell.next('after a write')
          await writer.write(batch([commit(1, [record('k', 'a', 1)])]))
          await rung
        } finally {
          await stop()
        }
      },
      {},
      schema,
    )
  })

  it('listens again after its connection is killed, and rings no more once stopped', async () => {
    const errors: Error[] = []
    await withCluster(
      1,
      async (writer, [follower], schema) => {
        const bell = new Bell()
        const stop = await follower!.follower!.listen(bell.ring)
        const { payloads, client } = await rawListen(`ds_feed_${schema}`)
        try {
          assert.equal((await followerConnections(schema)).length, 1)
          // Commits may go by while it reconnects: it rings once it listens again.
          const reconnected = bell.next('once reconnected')
          const killed = await sql(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`,
            [`dataspace follower schema=${schema} %`],
          )
          assert.equal(killed.length, 1)
          await reconnected
          assert.ok(
            errors.some((error) => /LISTEN connection/.test(error.message)),
            errors.map(String).join('\n'),
          )
          const rung = bell.next('after a write, reconnected')
          await writer.write(batch([commit(1, [record('k', 'a', 1)])]))
          await rung
          await stop()
          await until(
            async () => (await followerConnections(schema)).length === 0,
            5_000,
            'no follower connection left',
          )
          const rings = bell.rings
          await writer.write(batch([commit(2, [record('k', 'b', 2)])]))
          await until(() => payloads.includes('2'), 5_000, 'the ring of revision 2')
          await sleep(100)
          assert.equal(bell.rings, rings)
        } finally {
          await client.end()
          await stop()
        }
      },
      { onError: (error) => errors.push(error) },
    )
  })

  it('stops listening when the backend closes', async () => {
    const schema = freshSchema()
    await withCluster(
      0,
      async () => {
        const follower = postgresBackend({ url: POSTGRES_URL, schema, follow: true })
        await follower.open()
        await follower.follower!.listen(() => undefined)
        await follower.follower!.listen(() => undefined)
        assert.equal((await followerConnections(schema)).length, 2)
        await follower.close()
        await until(
          async () => (await followerConnections(schema)).length === 0,
          5_000,
          'no follower connection left',
        )
        await assert.rejects(
          follower.follower!.listen(() => undefined),
          Unavailable,
        )
      },
      {},
      schema,
    )
  })
})
