import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import {
  fieldIndexNames,
  LABELS_INDEX,
  postgresBackend,
  PRIMARY_INDEX,
  SCHEMA_VERSION,
} from '../../src/backends/postgres/index.js'
import { Conflict, InvalidArgument, Unavailable } from '../../src/errors/index.js'
import { nextPrefix } from '../../src/query/index.js'
import { backendConformance } from './conformance.js'
import type { BackendHarness } from './conformance.js'
import { commit, record, nextBatchId } from './fixtures.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const URL = POSTGRES_URL
const skip = postgresSkip

function freshSchema(): string {
  return `ds_test_${randomBytes(6).toString('hex')}`
}

async function harness(): Promise<BackendHarness> {
  const schema = freshSchema()
  return {
    backend: postgresBackend({ url: URL, schema, pool: { max: 4 } }),
    reopen: async () => postgresBackend({ url: URL, schema, pool: { max: 4 } }),
    cleanup: () => dropSchema(schema),
  }
}

describe('postgres backend', { skip }, () => {
  backendConformance('postgres', harness)

  describe('postgres specifics', () => {
    const schema = freshSchema()
    const backend = postgresBackend({ url: URL, schema })
    before(async () => {
      await backend.open()
      const rows = Array.from({ length: 3000 }, (_, i) =>
        record('api.route', `route-${i}`, 1, {
          data: { path: `/p${i}`, tags: [`t${i}`, 'all'] },
          labels: { shard: `s${i}` },
        }),
      )
      await backend.write({
        id: nextBatchId(),
        commits: [commit(1, rows)],
        kinds: [{ kind: 'api.route', indexes: ['path', 'tags'] }],
        sessions: { put: [], delete: [] },
      })
      const client = new pg.Client({ connectionString: URL })
      await client.connect()
      await client.query(`ANALYZE "${schema}".records`)
      await client.end()
    })
    after(async () => {
      await backend.close()
      await dropSchema(schema)
    })

    it('uses the declared expression index for a field and GIN for labels', async () => {
      const names = fieldIndexNames('api.route', 'path')
      const field = await backend.explainQuery!('api.route', { fields: 'path=/p7' })
      assert.ok(
        field.index === names.btree || field.index === names.gin,
        `expected ${names.btree}, got ${field.index}\n${field.detail}`,
      )
      const tags = await backend.explainQuery!('api.route', { fields: 'tags=t7' })
      assert.equal(tags.index !== null && tags.index.startsWith('ds_f'), true, tags.detail)
      const labels = await backend.explainQuery!('api.route', { labels: 'shard=s7' })
      assert.equal(labels.index, LABELS_INDEX, labels.detail)
      const prefix = await backend.explainQuery!('api.route', { id: 'route-12*' })
      assert.equal(prefix.index, PRIMARY_INDEX, prefix.detail)
    })

    it('answers array-element and prefix queries from those indexes', async () => {
      const byTag = await backend.query!('api.route', { fields: 'tags=t7' }, { limit: 5 })
      assert.deepEqual(
        byTag.map((r) => r.id),
        ['route-7'],
      )
      const page = await backend.query!(
        'api.route',
        { id: 'route-12*' },
        { limit: 3, after: 'route-120' },
      )
      assert.deepEqual(
        page.map((r) => r.id),
        ['route-1200', 'route-1201', 'route-1202'],
      )
    })

    it('refuses a second server on the schema at once, naming the holder', async () => {
      const other = postgresBackend({ url: URL, schema })
      const started = Date.now()
      await assert.rejects(other.open(), (error: unknown) => {
        assert.ok(error instanceof Unavailable, String(error))
        assert.ok(error.message.includes(`"${schema}"`), error.message)
        assert.match(error.message, new RegExp(`pid=${process.pid}\\b`))
        assert.doesNotMatch(error.message, /\n/)
        return true
      })
      assert.ok(Date.now() - started < 3_000, 'fails fast, without waiting on the lock')
      await other.close()
      // The holder still writes.
      await backend.write({
        id: nextBatchId(),
        commits: [commit(2, [record('api.route', 'x', 2)])],
        kinds: [],
        sessions: { put: [], delete: [] },
      })
    })

    it('writes nothing after losing its lock to another server; takes it back when free', async () => {
      const own = freshSchema()
      const first = postgresBackend({ url: URL, schema: own })
      await first.open()
      const write = (revision: number): Promise<void> =>
        first.write({
          id: nextBatchId(),
          commits: [commit(revision, [record('k', `r${revision}`, revision)])],
          kinds: [],
          sessions: { put: [], delete: [] },
        })
      const admin = new pg.Client({ connectionString: URL })
      await admin.connect()
      try {
        await write(1)
        // The lock's connection dies (a database restart, a network cut, an admin).
        const killLock = async (): Promise<void> => {
          await admin.query(
            `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.objsubid = 2
               AND l.objid::bigint = (hashtext($1)::bigint & 4294967295)`,
            [own],
          )
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
        await killLock()
        const second = postgresBackend({ url: URL, schema: own })
        await second.open()
        await assert.rejects(write(2), (error: unknown) => {
          assert.ok(error instanceof Unavailable, String(error))
          assert.match(error.message, /lost the lock on schema/)
          return true
        })
        await second.close()
        await write(2)
      } finally {
        await admin.end()
        await first.close()
        await dropSchema(own)
      }
    })

    it('writes a batch in one statement, and refuses a gap with the stored revision', async (t) => {
      const own = freshSchema()
      const writer = postgresBackend({ url: URL, schema: own, pool: { max: 1 } })
      await writer.open()
      // Every statement goes through Client#query: one call is one round trip.
      const query = t.mock.method(pg.Client.prototype, 'query')
      try {
        await writer.write({
          id: nextBatchId(),
          commits: [commit(1, [record('k', 'a', 1)]), commit(2, [], [['k', 'a']])],
          kinds: [],
          sessions: { put: [], delete: [] },
        })
        assert.equal(query.mock.callCount(), 1)
        query.mock.restore()
        await assert.rejects(
          writer.write({
            id: nextBatchId(),
            commits: [commit(5, [record('k', 'b', 5)])],
            kinds: [{ kind: 'k', indexes: ['x'] }],
            sessions: { put: [], delete: [] },
          }),
          (error: unknown) => error instanceof Conflict && error.currentRevision === 2,
        )
        // The refused batch left nothing behind, and the connection is usable again.
        await writer.write({
          id: nextBatchId(),
          commits: [commit(3, [record('k', 'c', 3)])],
          kinds: [],
          sessions: { put: [], delete: [] },
        })
        // One server per schema: the writer closes before a reader opens the schema.
        await writer.close()
        const reader = postgresBackend({ url: URL, schema: own })
        const state = await reader.open()
        await reader.close()
        assert.equal(state.revision, 3)
        assert.deepEqual(
          state.records.map((r) => r.id),
          ['c'],
        )
        assert.deepEqual(state.kinds, [])
      } finally {
        query.mock.restore()
        await writer.close()
        await dropSchema(own)
      }
    })

    it('records its migrations once', async () => {
      await backend.close() // one server per schema
      const again = postgresBackend({ url: URL, schema })
      await again.open()
      await again.close()
      const client = new pg.Client({ connectionString: URL })
      await client.connect()
      try {
        const { rows } = await client.query<{ version: number }>(
          `SELECT version FROM "${schema}".migrations ORDER BY version`,
        )
        assert.deepEqual(
          rows.map((r) => r.version),
          Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
        )
      } finally {
        await client.end()
      }
    })
  })
})

describe('postgres backend options', () => {
  it('rejects a schema name that is not a plain identifier', () => {
    for (const schema of ['Public', 'a-b', 'x"; DROP TABLE t; --', '', '1abc', 'a'.repeat(64)]) {
      assert.throws(() => postgresBackend({ url: URL, schema }), InvalidArgument, schema)
    }
  })

  it('bounds an id prefix by its code point successor', () => {
    assert.equal(nextPrefix('route-'), 'route.')
    assert.equal(nextPrefix('a\u{10ffff}'), 'b')
    assert.equal(nextPrefix('\u{d7ff}'), '\u{e000}')
    assert.equal(nextPrefix('\u{10ffff}'), undefined)
  })
})
