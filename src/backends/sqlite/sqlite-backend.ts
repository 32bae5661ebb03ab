import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { DataspaceRecord } from '../../engine/types.js'
import { InvalidArgument } from '../../errors/index.js'
import type { Backend, LoadedState, StoredKind, StoredSession, WriteBatch } from '../types.js'

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
]

/**
 * The embedded durable backend: one SQLite file (better-sqlite3), WAL mode, `synchronous = FULL`
 * so that a commit is on disk before it is acknowledged. The runtime batches every commit of a
 * turn into one `write`, which is one SQLite transaction (group commit): durability costs one
 * fsync per turn, not per write. better-sqlite3 is synchronous, so the state also loads
 * synchronously (`openSync`) and `createDataspace` can take this backend directly.
 */
export function sqliteBackend(
  options: SqliteBackendOptions,
): Backend & { openSync(): LoadedState } {
  if (typeof options.path !== 'string' || options.path.length === 0) {
    throw new InvalidArgument('sqlite backend needs a file path')
  }
  let db: Database.Database | undefined
  let write: ((batch: WriteBatch) => void) | undefined

  const openSync = (): LoadedState => {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true })
    db = new Database(options.path)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    migrate(db)
    write = prepareWrite(db)
    return load(db)
  }

  return {
    name: 'sqlite',
    capabilities: { durable: options.path !== ':memory:', changes: false, query: false },
    openSync,
    open: async () => openSync(),
    async write(batch) {
      if (write === undefined) throw new Error('sqlite backend: write before open')
      write(batch)
    },
    async close() {
      db?.close()
      db = undefined
    },
  }
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
  const records: DataspaceRecord[] = []
  for (const row of db.prepare('SELECT * FROM records').iterate() as Iterable<RecordRow>) {
    records.push(fromRow(row))
  }
  const kinds = (db.prepare('SELECT * FROM kinds').all() as KindRow[]).map((row): StoredKind => ({
    kind: row.kind,
    ...(row.fields === null ? {} : { fields: JSON.parse(row.fields) as string[] }),
    indexes: JSON.parse(row.indexes) as string[],
  }))
  const sessions = (db.prepare('SELECT body FROM sessions').all() as { body: string }[]).map(
    (row) => JSON.parse(row.body) as StoredSession,
  )
  return { revision, records, kinds, sessions }
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
  const putKind = db.prepare(
    `INSERT INTO kinds (kind, fields, indexes) VALUES (?, ?, ?)
     ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields, indexes = excluded.indexes`,
  )
  const putSession = db.prepare(
    'INSERT INTO sessions (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body',
  )
  const deleteSession = db.prepare('DELETE FROM sessions WHERE id = ?')
  const getLastBatch = db.prepare('SELECT id FROM last_batch').pluck()
  const setLastBatch = db.prepare('UPDATE last_batch SET id = ?')
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
      putKind.run(
        kind.kind,
        kind.fields === undefined ? null : JSON.stringify(kind.fields),
        JSON.stringify(kind.indexes),
      )
    }
    for (const session of batch.sessions.put) putSession.run(session.id, JSON.stringify(session))
    for (const id of batch.sessions.delete) deleteSession.run(id)
  })
}
