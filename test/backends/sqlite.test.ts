// The SQLite backend against the one backend conformance suite, a fresh file per test, and what
// is SQLite's own: its indexes, their names in plans, and quoting JSON paths into SQL text.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import {
  fieldIndexName,
  jsonPath,
  OWNER_INDEX,
  PRIMARY_INDEX,
  sqlString,
} from '../../src/backends/sqlite/pushdown.js'
import { backendConformance } from './conformance.js'
import { commit, nextBatchId, record } from './fixtures.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-sqlite-conformance-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

backendConformance('sqlite', async () => {
  const path = join(dir, `${++files}.db`)
  return {
    backend: sqliteBackend({ path }),
    reopen: async () => sqliteBackend({ path }),
    cleanup: async () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    },
  }
})

/** The names of the indexes on `records` in the file at `path`. */
function indexNames(path: string): string[] {
  const db = new Database(path, { readonly: true })
  try {
    return db
      .prepare(`SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'records'`)
      .pluck()
      .all() as string[]
  } finally {
    db.close()
  }
}

describe('sqlite specifics', () => {
  it('answers queries on a :memory: store too', async () => {
    const backend = sqliteBackend({ path: ':memory:' })
    assert.equal(backend.capabilities.query, true)
    await backend.open()
    await backend.write({
      id: nextBatchId(),
      commits: [commit(1, [record('k', 'a', 1), record('k', 'b', 1)])],
      kinds: [{ kind: 'k', indexes: ['n'] }],
      sessions: { put: [], delete: [] },
    })
    const found = await backend.query!('k', { id: 'b' }, { limit: Infinity })
    assert.deepEqual(
      found.map((r) => r.id),
      ['b'],
    )
    await backend.close()
  })

  it('plans a declared field, an owner and an id prefix on their indexes', async () => {
    const path = join(dir, `${++files}.db`)
    const backend = sqliteBackend({ path })
    await backend.open()
    const rows = Array.from({ length: 3000 }, (_, i) =>
      record('api.route', `route-${i}`, 1, {
        data: { path: `/p${i}`, tags: [`t${i}`, 'all'] },
        owner: `p${i % 7}`,
      }),
    )
    await backend.write({
      id: nextBatchId(),
      commits: [commit(1, rows)],
      kinds: [{ kind: 'api.route', indexes: ['path', 'tags'] }],
      sessions: { put: [], delete: [] },
    })
    const field = await backend.explainQuery!('api.route', { fields: 'path=/p7' })
    assert.equal(field.index, fieldIndexName('api.route', 'path'), field.detail)
    const tags = await backend.explainQuery!('api.route', { fields: 'tags=t7' })
    assert.equal(tags.index, fieldIndexName('api.route', 'tags'), tags.detail)
    const owner = await backend.explainQuery!('api.route', { owner: 'p3' })
    assert.equal(owner.index, OWNER_INDEX, owner.detail)
    const prefix = await backend.explainQuery!('api.route', { id: 'route-12*' })
    assert.equal(prefix.index, PRIMARY_INDEX, prefix.detail)
    assert.match(prefix.detail, /id>\? AND id<\?/)
    const ids = async (fields: string): Promise<string[]> =>
      (await backend.query!('api.route', { fields }, { limit: 10 })).map((r) => r.id)
    assert.deepEqual(await ids('path=/p7'), ['route-7'])
    assert.deepEqual(await ids('tags=t7'), ['route-7'])
    await backend.close()
  })

  it('creates declared indexes with their kind, drops undeclared ones, repairs them at open', async () => {
    const path = join(dir, `${++files}.db`)
    const kind = "it's"
    const paths = ['a.b', `q"uo\\te's`, 'ü.✓']
    const backend = sqliteBackend({ path })
    await backend.open()
    await backend.write({
      id: nextBatchId(),
      commits: [],
      kinds: [{ kind, indexes: paths }],
      sessions: { put: [], delete: [] },
    })
    const names = paths.map((p) => fieldIndexName(kind, p))
    // The file is locked while a backend has it open (one server per file): read it closed.
    await backend.close()
    for (const name of names) assert.ok(indexNames(path).includes(name), name)
    const redeclared = sqliteBackend({ path })
    await redeclared.open()
    await redeclared.write({
      id: nextBatchId(),
      commits: [],
      kinds: [{ kind, indexes: paths.slice(1) }],
      sessions: { put: [], delete: [] },
    })
    await redeclared.close()
    assert.ok(!indexNames(path).includes(names[0]!))

    const db = new Database(path)
    db.exec(`DROP INDEX ${names[1]!}`)
    db.close()
    const reopened = sqliteBackend({ path })
    await reopened.open()
    await reopened.close()
    const now = indexNames(path)
    assert.ok(now.includes(names[1]!) && now.includes(names[2]!) && !now.includes(names[0]!))
  })

  it('queries data paths whose keys need quoting', async () => {
    const backend = sqliteBackend({ path: ':memory:' })
    await backend.open()
    const keys = [`q"uo\\te's`, 'a\u0000b', 'tab\there', '$[0]', 'ü✓😀']
    const kind = "we'ird"
    const rows = keys.map((key, i) => record(kind, `r${i}`, 1, { data: { [key]: { x: 'v' } } }))
    await backend.write({
      id: nextBatchId(),
      commits: [commit(1, rows)],
      kinds: [{ kind, indexes: keys.map((key) => `${key}.x`) }],
      sessions: { put: [], delete: [] },
    })
    const escape = (text: string): string => text.replace(/[\\,=!]/g, '\\$&')
    for (const [i, key] of keys.entries()) {
      const found = await backend.query!(kind, { fields: `${escape(key)}.x=v` }, { limit: 10 })
      assert.deepEqual(
        found.map((r) => r.id),
        [`r${i}`],
        key,
      )
    }
    await backend.close()
  })

  it('quotes any key as a JSON path label and any text as an SQL literal', () => {
    const db = new Database(':memory:')
    try {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', minLength: 1 }), (key) => {
          const data = JSON.stringify({ [key]: { [key]: 7 }, other: 1 })
          const literal = sqlString(jsonPath([key, key]))!
          const got = db.prepare(`SELECT json_extract(?, ${literal}) AS v`).get(data) as {
            v: unknown
          }
          assert.equal(got.v, 7)
          if (!key.includes('\0')) {
            const text = db.prepare(`SELECT ${sqlString(key)!} = ? AS same`).get(key) as {
              same: number
            }
            assert.equal(text.same, 1)
          }
        }),
        { numRuns: 500 },
      )
    } finally {
      db.close()
    }
  })

  it('migrates a store made before residency: every kind stays resident', async () => {
    const path = join(dir, `${++files}.db`)
    const backend = sqliteBackend({ path })
    await backend.open()
    await backend.write({
      id: nextBatchId(),
      commits: [commit(1, [record('k', 'a', 1, { owner: 'p' })])],
      kinds: [{ kind: 'k', indexes: [] }],
      sessions: { put: [], delete: [] },
    })
    await backend.close()
    // Back to schema version 2.
    const db = new Database(path)
    db.exec(`DROP TABLE answers; DROP INDEX ${OWNER_INDEX}; ALTER TABLE kinds DROP COLUMN resident;
      DELETE FROM migrations WHERE version > 2`)
    db.close()
    const reopened = sqliteBackend({ path })
    const state = await reopened.open()
    assert.deepEqual(state.kinds, [{ kind: 'k', indexes: [] }])
    assert.deepEqual(
      state.records.map((r) => r.id),
      ['a'],
    )
    await reopened.close()
    assert.ok(indexNames(path).includes(OWNER_INDEX))
  })
})
