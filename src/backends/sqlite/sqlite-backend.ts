import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { DataspaceRecord, Selector } from '../../model/types.js'
import { InvalidArgument } from '../../errors/index.js'
import type {
  Backend,
  BackendPlan,
  LoadedState,
  OwnedCount,
  QueryPage,
  StoredKind,
  StoredSession,
  WriteBatch,
} from '../../engine/ports/backend.js'
import {
  fieldIndexDdl,
  fieldIndexName,
  OWNER_INDEX,
  PRIMARY_INDEX,
  RECORD_COLUMNS,
  selectQuery,
} from './pushdown.js'
import { openLocked } from './file-lock.js'
import { ANSWERS_TABLE, loadAnswers, prepareAnswers } from './answers.js'

export interface SqliteBackendOptions {
  /** The database file (created with its folder), or `:memory:` for tests. */
  readonly path: string
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
   INSERT INTO meta (key, value) VALUES ('revision', 0);
   CREATE TABLE records (
     kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, labels TEXT NOT NULL,
     owner TEXT, revision INTEGER NOT NULL, created_revision INTEGER NOT NULL, expires_at INTEGER,
     PRIMARY KEY (kind, id)) STRICT, WITHOUT ROWID;
   CREATE TABLE kinds (kind TEXT PRIMARY KEY, fields TEXT, indexes TEXT NOT NULL) STRICT;
   CREATE TABLE sessions (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT;`,
  // The id of the last batch written: a retry of it (its answer was lost) is recognised.
  `CREATE TABLE last_batch (id TEXT NOT NULL) STRICT;
   INSERT INTO last_batch (id) VALUES ('');`,
  // Residency (docs/backends.md, "Non-resident kinds"): a non-resident kind's records are not loaded at open, only counted
  // per owner; the owner index serves those counts and `owner` selectors.
  `ALTER TABLE kinds ADD COLUMN resident INTEGER NOT NULL DEFAULT 1;
   CREATE INDEX ${OWNER_INDEX} ON records (kind, owner) WHERE owner IS NOT NULL;`,
  // Answers of sessions' write calls, stored with the commits they answer (answers.ts).
  ANSWERS_TABLE,
]

/**
 * The embedded durable backend: one SQLite file (better-sqlite3), WAL mode, `synchronous = FULL`
 * so that a commit is on disk before it is acknowledged. The runtime batches every commit of a
 * turn into one `write`, which is one SQLite transaction (group commit): durability costs one
 * fsync per turn, not per write. better-sqlite3 is synchronous, so the state also loads
 * synchronously (`openSync`) and `createDataspace` can take this backend directly.
 *
 * It answers `query` itself (selector pushdown, pushdown.ts): each declared field of a kind gets
 * a partial expression index over that kind's rows, created with the kind's declaration and
 * repaired at open, so non-resident kinds (docs/backends.md) are served from the file.
 */
export function sqliteBackend(
  options: SqliteBackendOptions,
): Backend & { openSync(): LoadedState } {
  if (typeof options.path !== 'string' || options.path.length === 0) {
    throw new InvalidArgument('sqlite backend needs a file path')
  }
  let db: Database.Database | undefined
  let write: ((batch: WriteBatch) => void) | undefined
  let statements: StatementCache | undefined
  let release: (() => void) | undefined

  const openSync = (): LoadedState => {
    if (options.path === ':memory:') db = new Database(options.path)
    else {
      mkdirSync(dirname(options.path), { recursive: true })
      // One server per file: a second one is refused here, naming the holder (file-lock.ts).
      const locked = openLocked(options.path)
      db = locked.db
      release = locked.release
    }
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    migrate(db)
    seedPlannerStats(db)
    write = prepareWrite(db)
    statements = new StatementCache(db)
    return load(db)
  }

  const opened = (): StatementCache => {
    if (statements === undefined) throw new Error('sqlite backend: query before open')
    return statements
  }

  return {
    name: 'sqlite',
    capabilities: { durable: options.path !== ':memory:', changes: false, query: true },
    openSync,
    open: async () => openSync(),
    async write(batch) {
      if (write === undefined) throw new Error('sqlite backend: write before open')
      write(batch)
    },
    refusesContent,
    async query(kind: string, selector: Selector, page: QueryPage): Promise<DataspaceRecord[]> {
      const { text, values } = selectQuery(kind, selector, page)
      return (
        opened()
          .get(text)
          .all(...values) as RecordRow[]
      ).map(fromRow)
    },
    async explainQuery(kind: string, selector: Selector): Promise<BackendPlan> {
      const { text, values } = selectQuery(kind, selector, undefined)
      const rows = opened()
        .get(`EXPLAIN QUERY PLAN ${text}`)
        .all(...values) as PlanRow[]
      return explain(rows)
    },
    async close() {
      statements = undefined
      db?.close()
      db = undefined
      release?.()
      release = undefined
    },
  }
}

/**
 * The errors that mean SQLite refuses a value or a row (docs/backends.md, "Refused writes"): a
 * constraint (STRICT type checks such as "cannot store REAL value in INTEGER column", CHECK,
 * NOT NULL, triggers), a type mismatch, a value too big, or a value the driver cannot bind
 * (better-sqlite3 throws `RangeError`/`TypeError` for those). Busy, locked, I/O, full or
 * read-only databases are not: the batch is retried.
 */
function refusesContent(error: unknown): boolean {
  if (error instanceof RangeError || error instanceof TypeError) return true
  if (!(error instanceof Database.SqliteError)) return false
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(error.code)
}

/** Prepared statements by text, the most recently used kept (selectors repeat). */
class StatementCache {
  readonly #db: Database.Database
  readonly #statements = new Map<string, Database.Statement>()

  constructor(db: Database.Database) {
    this.#db = db
  }

  get(text: string): Database.Statement {
    let statement = this.#statements.get(text)
    if (statement === undefined) {
      statement = this.#db.prepare(text)
      if (this.#statements.size >= 256) {
        this.#statements.delete(this.#statements.keys().next().value!)
      }
    } else {
      this.#statements.delete(text)
    }
    this.#statements.set(text, statement)
    return statement
  }
}

interface PlanRow {
  id: number
  parent: number
  detail: string
}

/** The first index the plan searches (the primary key if only that), and the plan as text. */
function explain(rows: readonly PlanRow[]): BackendPlan {
  const depth = new Map<number, number>()
  const lines = rows.map((row) => {
    const level = (depth.get(row.parent) ?? -1) + 1
    depth.set(row.id, level)
    return `${'  '.repeat(level)}${row.detail}`
  })
  let index: string | null = null
  for (const row of rows) {
    const named = /\bUSING (?:COVERING )?INDEX (\S+)/.exec(row.detail)
    if (named !== null) {
      index = named[1]!
      break
    }
    if (index === null && /\bUSING PRIMARY KEY\b/.test(row.detail)) index = PRIMARY_INDEX
  }
  return { index, detail: lines.join('\n') }
}

/**
 * Without statistics SQLite guesses that `kind = ?` selects about ten rows, and so prefers the
 * primary key (already in id order) to a declared field's index or the owner index. Until ANALYZE
 * measures the table, tell the planner that a kind holds many rows. (SQLite documents editing
 * `sqlite_stat1` for this; `ANALYZE meta` only creates the table, and `ANALYZE sqlite_schema`
 * reloads it.)
 */
function seedPlannerStats(db: Database.Database): void {
  const exists = db
    .prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'`)
    .get()
  if (exists === undefined) db.exec('ANALYZE meta')
  const seeded = db
    .prepare(
      `INSERT INTO sqlite_stat1 (tbl, idx, stat) SELECT 'records', ?, '1000000 100000 1'
       WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE tbl = 'records' AND idx = ?)`,
    )
    .run(PRIMARY_INDEX, PRIMARY_INDEX)
  if (seeded.changes > 0) db.exec('ANALYZE sqlite_schema')
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY) STRICT')
  const row = db.prepare('SELECT MAX(version) AS v FROM migrations').get() as { v: number | null }
  const done = row.v ?? 0
  const apply = db.transaction(() => {
    for (let v = done; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] as string)
      db.prepare('INSERT INTO migrations (version) VALUES (?)').run(v + 1)
    }
  })
  apply()
}

function load(db: Database.Database): LoadedState {
  const { value: revision } = db.prepare(`SELECT value FROM meta WHERE key = 'revision'`).get() as {
    value: number
  }
  const kindRows = db.prepare('SELECT * FROM kinds').all() as KindRow[]
  // Declared indexes are created with their kind; this repairs any that were dropped.
  db.transaction(() => {
    for (const row of kindRows) {
      for (const path of JSON.parse(row.indexes) as string[]) ensureFieldIndex(db, row.kind, path)
    }
  })()
  // Non-resident kinds stay in the file: only their per-owner counts are loaded.
  const away = 'SELECT kind FROM kinds WHERE resident = 0'
  const records: DataspaceRecord[] = []
  const all = db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE kind NOT IN (${away})`)
  for (const row of all.iterate() as Iterable<RecordRow>) records.push(fromRow(row))
  const owned = db
    .prepare(
      `SELECT kind, owner, count(*) AS count FROM records
       WHERE kind IN (${away}) AND owner IS NOT NULL GROUP BY kind, owner`,
    )
    .all() as OwnedCount[]
  const kinds = kindRows.map((row): StoredKind => ({
    kind: row.kind,
    ...(row.fields === null ? {} : { fields: JSON.parse(row.fields) as string[] }),
    indexes: JSON.parse(row.indexes) as string[],
    ...(row.resident === 0 ? { resident: false } : {}),
  }))
  const sessions = (db.prepare('SELECT body FROM sessions').all() as { body: string }[]).map(
    (row) => JSON.parse(row.body) as StoredSession,
  )
  const answers = loadAnswers(db)
  return {
    revision,
    records,
    ...(owned.length === 0 ? {} : { owned }),
    kinds,
    sessions,
    ...(answers.length === 0 ? {} : { answers }),
  }
}

/** Creates the index of a declared field if it is missing (its DDL is idempotent). */
function ensureFieldIndex(db: Database.Database, kind: string, path: string): void {
  const ddl = fieldIndexDdl(kind, path)
  if (ddl !== undefined) db.exec(ddl)
}

interface RecordRow {
  kind: string
  id: string
  data: string
  labels: string
  owner: string | null
  revision: number
  created_revision: number
  expires_at: number | null
}

interface KindRow {
  kind: string
  fields: string | null
  indexes: string
  resident: number
}

function fromRow(row: RecordRow): DataspaceRecord {
  return {
    kind: row.kind,
    id: row.id,
    data: JSON.parse(row.data) as unknown,
    labels: JSON.parse(row.labels) as Record<string, string>,
    owner: row.owner,
    revision: row.revision,
    createdRevision: row.created_revision,
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
  }
}

/** One transaction per batch; a revision that does not follow the stored one aborts it. */
function prepareWrite(db: Database.Database): (batch: WriteBatch) => void {
  const getRevision = db.prepare(`SELECT value FROM meta WHERE key = 'revision'`).pluck()
  const setRevision = db.prepare(`UPDATE meta SET value = ? WHERE key = 'revision'`)
  const upsert = db.prepare(
    `INSERT INTO records (kind, id, data, labels, owner, revision, created_revision, expires_at)
     VALUES (@kind, @id, @data, @labels, @owner, @revision, @createdRevision, @expiresAt)
     ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, labels = excluded.labels,
       owner = excluded.owner, revision = excluded.revision,
       created_revision = excluded.created_revision, expires_at = excluded.expires_at`,
  )
  const remove = db.prepare('DELETE FROM records WHERE kind = ? AND id = ?')
  const getIndexes = db.prepare('SELECT indexes FROM kinds WHERE kind = ?').pluck()
  const putKind = db.prepare(
    `INSERT INTO kinds (kind, fields, indexes, resident) VALUES (?, ?, ?, ?)
     ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields, indexes = excluded.indexes,
       resident = excluded.resident`,
  )
  const putSession = db.prepare(
    'INSERT INTO sessions (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body',
  )
  const deleteSession = db.prepare('DELETE FROM sessions WHERE id = ?')
  const getLastBatch = db.prepare('SELECT id FROM last_batch').pluck()
  const setLastBatch = db.prepare('UPDATE last_batch SET id = ?')
  const answers = prepareAnswers(db)
  return db.transaction((batch: WriteBatch) => {
    let revision = getRevision.get() as number
    const first = batch.commits[0]
    if (first !== undefined && first.revision <= revision) {
      // The same batch again, already stored: its answer was lost. Nothing to do.
      if (getLastBatch.get() === batch.id && batch.commits.at(-1)?.revision === revision) return
    }
    for (const commit of batch.commits) {
      if (commit.revision !== revision + 1) {
        throw new Error(
          `sqlite backend: commit ${commit.revision} does not follow the stored revision ${revision} (a second writer on this file?)`,
        )
      }
      revision = commit.revision
      for (const change of commit.changes) {
        const r = change.after
        if (r === undefined) remove.run(change.kind, change.id)
        else
          upsert.run({
            kind: r.kind,
            id: r.id,
            data: JSON.stringify(r.data),
            labels: JSON.stringify(r.labels),
            owner: r.owner,
            revision: r.revision,
            createdRevision: r.createdRevision,
            expiresAt: r.expiresAt ?? null,
          })
      }
    }
    setRevision.run(revision)
    setLastBatch.run(batch.id)
    for (const kind of batch.kinds) {
      // The kind's field indexes change in the same transaction as its declaration.
      const before = getIndexes.get(kind.kind) as string | undefined
      for (const path of before === undefined ? [] : (JSON.parse(before) as string[])) {
        if (!kind.indexes.includes(path)) {
          db.exec(`DROP INDEX IF EXISTS ${fieldIndexName(kind.kind, path)}`)
        }
      }
      for (const path of kind.indexes) ensureFieldIndex(db, kind.kind, path)
      putKind.run(
        kind.kind,
        kind.fields === undefined ? null : JSON.stringify(kind.fields),
        JSON.stringify(kind.indexes),
        kind.resident === false ? 0 : 1,
      )
    }
    for (const session of batch.sessions.put) putSession.run(session.id, JSON.stringify(session))
    for (const id of batch.sessions.delete) deleteSession.run(id)
    // After the session deletes: an ended session's answers go with it.
    answers(batch)
  })
}
