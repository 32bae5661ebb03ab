import pg from 'pg'
import type { PoolClient, PoolConfig } from 'pg'
import type { DataspaceRecord, Selector } from '../../model/types.js'
import { Conflict, InvalidArgument, Unavailable } from '../../errors/index.js'
import type {
  Backend,
  BackendPlan,
  LoadedState,
  QueryPage,
  StoredAnswer,
  StoredChange,
  StoredCommit,
  StoredKind,
  StoredSession,
  WriteBatch,
} from '../../engine/ports/backend.js'
import { fieldIndexNames, migrate, REVISION_CONFLICT, schemaTables } from './migrations.js'
import type { SchemaTables } from './migrations.js'
import { RECORD_COLUMNS, selectQuery } from './pushdown.js'
import { SchemaLock } from './schema-lock.js'

export interface PostgresBackendOptions {
  /** A connection string: `postgres://user@host:5432/db`. */
  readonly url: string
  /** The schema holding the tables (default `dataspace`); `[a-z_][a-z0-9_]*`, at most 63 bytes. */
  readonly schema?: string
  /** Extra `pg.Pool` settings (`max`, `idleTimeoutMillis`, `ssl`, …). */
  readonly pool?: Omit<PoolConfig, 'connectionString'>
  /**
   * Errors of idle pooled connections (the server restarted): the pool drops the connection and
   * the next query opens a new one, but an unhandled `error` event would crash the process.
   */
  readonly onError?: (error: Error) => void
}

/**
 * The PostgreSQL backend (docs/backends.md, "PostgreSQL"): records, a change feed, kinds and sessions in one
 * schema; every `write` is one transaction that locks the single revision row, so revision order
 * is commit order; selectors on declared fields and labels are pushed down to expression and GIN
 * indexes (`query`, `explainQuery`). See docs/backends.md, "PostgreSQL".
 *
 * @example
 * const backend = postgresBackend({ url: 'postgres://postgres@127.0.0.1:5432/app' })
 * const state = await backend.open()
 */
export function postgresBackend(options: PostgresBackendOptions): Backend {
  if (typeof options.url !== 'string' || options.url.length === 0) {
    throw new InvalidArgument('postgres backend needs a connection url')
  }
  const schemaName = options.schema ?? 'dataspace'
  return new PostgresBackend(options, schemaName, schemaTables(schemaName))
}

class PostgresBackend implements Backend {
  readonly name = 'postgres'
  readonly capabilities = Object.freeze({ durable: true, changes: true, query: true })
  readonly #options: PostgresBackendOptions
  readonly #schemaName: string
  readonly #t: SchemaTables
  #pool: pg.Pool | undefined
  /** The schema's lock, held from open to close: one server per schema (schema-lock.ts). */
  #lock: SchemaLock | undefined

  constructor(options: PostgresBackendOptions, schemaName: string, tables: SchemaTables) {
    this.#options = options
    this.#schemaName = schemaName
    this.#t = tables
  }

  async open(): Promise<LoadedState> {
    // First, before migrating: a second server on the schema is refused before it touches it.
    this.#lock = await SchemaLock.acquire(this.#options, this.#schemaName)
    try {
      return await this.#openLocked()
    } catch (error) {
      await this.close()
      throw error
    }
  }

  async #openLocked(): Promise<LoadedState> {
    const pool = new pg.Pool({ ...this.#options.pool, connectionString: this.#options.url })
    pool.on('error', (error) => this.#options.onError?.(error))
    this.#pool = pool
    const client = await pool.connect()
    try {
      await migrate(client, this.#schemaName)
    } finally {
      client.release()
    }
    // One snapshot for everything, so that records, kinds and revision agree.
    return this.#transaction('BEGIN ISOLATION LEVEL REPEATABLE READ', (c) => this.#load(c))
  }

  async #load(client: PoolClient): Promise<LoadedState> {
    const t = this.#t
    const revision = await client.query<{ revision: string }>(`SELECT revision FROM ${t.revision}`)
    const kinds = await client.query<KindRow>(
      `SELECT kind, fields, indexes, resident FROM ${t.kinds}`,
    )
    // Non-resident kinds stay in the database: only their per-owner counts are loaded.
    const away = kinds.rows.filter((row) => !row.resident).map((row) => row.kind)
    const records = await client.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM ${t.records} WHERE NOT (kind = ANY($1::text[]))`,
      [away],
    )
    const owned = await client.query<{ kind: string; owner: string; count: string }>(
      `SELECT kind, owner, count(*) AS count FROM ${t.records}
       WHERE kind = ANY($1::text[]) AND owner IS NOT NULL GROUP BY kind, owner`,
      [away],
    )
    const sessions = await client.query<SessionRow>(
      `SELECT id, resume_token_hash, pid, name, ttl, children, last_child, principal
       FROM ${t.sessions}`,
    )
    const answers = await client.query<AnswerRow>(
      `SELECT a.session, a.call, a.revision, a.value FROM ${t.answers} a
       JOIN ${t.sessions} s ON s.id = a.session ORDER BY a.revision, a.call`,
    )
    // Declared indexes are created with their kind; this repairs any a DBA dropped.
    for (const kind of kinds.rows) await this.#ensureIndexes(client, kind.kind, kind.indexes)
    return {
      revision: Number(revision.rows[0]?.revision ?? 0),
      records: records.rows.map(recordFromRow),
      kinds: kinds.rows.map((row): StoredKind => ({
        kind: row.kind,
        ...(row.fields === null ? {} : { fields: row.fields }),
        indexes: row.indexes,
        ...(row.resident ? {} : { resident: false }),
      })),
      ...(owned.rows.length === 0
        ? {}
        : {
            owned: owned.rows.map((row) => ({
              kind: row.kind,
              owner: row.owner,
              count: Number(row.count),
            })),
          }),
      sessions: sessions.rows.map((row): StoredSession => ({
        id: row.id,
        resumeTokenHash: row.resume_token_hash,
        pid: row.pid,
        name: row.name,
        ttl: row.ttl,
        children: row.children,
        lastChild: row.last_child,
        principal: row.principal,
      })),
      ...(answers.rows.length === 0 ? {} : { answers: answers.rows.map(answerFromRow) }),
    }
  }

  async write(batch: WriteBatch): Promise<void> {
    const commits = batch.commits
    for (let i = 1; i < commits.length; i++) {
      if (commits[i]!.revision !== commits[i - 1]!.revision + 1) {
        throw new Conflict(
          `postgres backend: commit ${commits[i]!.revision} does not follow ${commits[i - 1]!.revision} in one batch`,
        )
      }
    }
    await this.#holdLock()
    const { deletes, upserts, feed } = commitRows(commits)
    const kinds = [...new Map(batch.kinds.map((kind) => [kind.kind, kind])).values()]
    const { put, delete: gone } = batch.sessions
    const answers = batch.answers ?? { put: [], delete: [] }
    const size = commits.length + kinds.length + put.length + gone.length
    if (size + answers.put.length + answers.delete.length === 0) return
    const json = (rows: readonly unknown[]): string | null =>
      rows.length === 0 ? null : JSON.stringify(rows)
    // One statement, so one round trip and, outside BEGIN/COMMIT, one transaction: the function
    // (migration 3) locks the counter row, checks the revision, and writes everything or nothing.
    const values = [
      batch.id,
      commits[0]?.revision ?? null,
      commits[commits.length - 1]?.revision ?? null,
      json(deletes),
      json(upserts),
      json(feed),
      json(kinds.map(kindToInput)),
      json(latestById(put).map(sessionToRow)),
      gone.length === 0 ? null : [...gone],
      json(answers.put),
      json(answers.delete),
    ]
    try {
      await this.#single(
        `SELECT ${this.#t.writeBatch}($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7::jsonb,
           $8::jsonb, $9::text[], $10::jsonb, $11::jsonb)`,
        values,
      )
    } catch (error) {
      if (error instanceof pg.DatabaseError && error.code === REVISION_CONFLICT) {
        const stored = Number(error.detail)
        throw new Conflict(
          `postgres backend: commit ${commits[0]?.revision} does not follow the stored revision ${stored} (a second writer on this schema?)`,
          stored,
          { cause: error },
        )
      }
      throw error
    }
  }

  /**
   * The errors that mean PostgreSQL refuses a value or a row (docs/backends.md, "Refused writes"):
   * SQLSTATE class 22 (data exception: `\u0000` or a lone surrogate in JSON, a timestamp or
   * number out of range), 23 (a constraint), 54 (a program limit: a row or index entry too
   * large), P0001 (raised by a trigger), or a value the client could not encode (`RangeError`,
   * `TypeError`). Connection errors, class 08, 40, 53, 55, 57, 58, XX and our own revision
   * conflict (`DS409`) are retried.
   */
  refusesContent(error: unknown): boolean {
    if (error instanceof RangeError || error instanceof TypeError) return true
    if (!(error instanceof pg.DatabaseError) || typeof error.code !== 'string') return false
    return /^(22|23|54)/.test(error.code) || error.code === 'P0001'
  }

  async #ensureIndexes(client: PoolClient, kind: string, paths: readonly string[]): Promise<void> {
    for (const path of paths) {
      const names = fieldIndexNames(kind, path)
      await client.query(`SELECT ${this.#t.ensureFieldIndexes}($1, $2::text[], $3, $4)`, [
        kind,
        path.split('.'),
        names.btree,
        names.gin,
      ])
    }
  }

  async changesSince(revision: number, limit: number): Promise<StoredCommit[]> {
    const t = this.#t
    const { rows } = await this.#pooled().query<{
      revision: string
      kind: string
      id: string
      after: RecordJson | null
    }>(
      `SELECT revision, kind, id, after FROM ${t.changes}
       WHERE revision > $1 AND revision <= (
         SELECT max(revision) FROM (
           SELECT DISTINCT revision FROM ${t.changes} WHERE revision > $1
           ORDER BY revision LIMIT $2) AS page)
       ORDER BY revision, seq`,
      [revision, Math.max(0, Math.floor(limit))],
    )
    const commits: { revision: number; changes: StoredChange[] }[] = []
    for (const row of rows) {
      const rev = Number(row.revision)
      let commit = commits[commits.length - 1]
      if (commit?.revision !== rev) {
        commit = { revision: rev, changes: [] }
        commits.push(commit)
      }
      commit.changes.push({
        kind: row.kind,
        id: row.id,
        after: row.after === null ? undefined : recordFromJson(row.after),
      })
    }
    return commits
  }

  async query(kind: string, selector: Selector, page: QueryPage): Promise<DataspaceRecord[]> {
    const { text, values } = selectQuery(this.#t.records, kind, selector, page)
    const { rows } = await this.#pooled().query<RecordRow>(text, [...values])
    return rows.map(recordFromRow)
  }

  async explainQuery(kind: string, selector: Selector): Promise<BackendPlan> {
    const { text, values } = selectQuery(this.#t.records, kind, selector, undefined)
    const { rows } = await this.#pooled().query<{ 'QUERY PLAN': unknown }>(
      `EXPLAIN (FORMAT JSON) ${text}`,
      [...values],
    )
    const plan = rows[0]?.['QUERY PLAN']
    const indexes = indexNames(plan)
    const estimate = (plan as [{ Plan?: { 'Plan Rows'?: unknown } }] | undefined)?.[0]?.Plan?.[
      'Plan Rows'
    ]
    return {
      index: indexes[0] ?? null,
      detail: JSON.stringify(plan, null, 2),
      ...(typeof estimate === 'number' ? { rows: estimate } : {}),
    }
  }

  async close(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    await pool?.end()
    const lock = this.#lock
    this.#lock = undefined
    await lock?.release()
  }

  /**
   * Writes only under the schema's lock. PostgreSQL drops it with its connection, and another
   * server may take it meanwhile: then nothing is written (the runtime retries the batch, its
   * writers get `Unavailable`) until the lock is ours again on a new connection.
   */
  async #holdLock(): Promise<void> {
    const lock = this.#lock
    if (lock === undefined) throw new Error('postgres backend: write before open')
    const lost = lock.lost
    if (lost === undefined) return
    this.#options.onError?.(lost)
    await lock.release()
    try {
      this.#lock = await SchemaLock.acquire(this.#options, this.#schemaName)
    } catch (error) {
      throw new Unavailable(
        `postgres backend: lost the lock on schema "${this.#schemaName}" (${lost.message}) and ` +
          `cannot take it back: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      )
    }
  }

  #pooled(): pg.Pool {
    if (this.#pool === undefined) throw new Error('postgres backend: used before open')
    return this.#pool
  }

  /**
   * Runs one statement on a pooled connection (its own transaction). Unlike `pool.query`, a
   * connection whose statement failed in the database (a refused batch) goes back to the pool.
   */
  async #single(text: string, values: readonly unknown[]): Promise<void> {
    await this.#withClient(async (client, distrust) => {
      try {
        await client.query(text, [...values])
      } catch (error) {
        if (!(error instanceof pg.DatabaseError)) distrust(error)
        throw error
      }
    })
  }

  /** Runs `run` in one transaction on one pooled connection; rolls back on any error. */
  async #transaction<T>(begin: string, run: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.#withClient(async (client, distrust) => {
      await client.query(begin)
      try {
        const result = await run(client)
        await client.query('COMMIT')
        return result
      } catch (error) {
        // A connection that cannot roll back is not trusted back into the pool.
        await client.query('ROLLBACK').catch(distrust)
        throw error
      }
    })
  }

  /**
   * Checks a connection out for `run` and back in after it. `distrust(error)` marks it broken so
   * the pool drops it instead of reusing it. A connection that dies while checked out emits
   * 'error' on the client, which the pool only listens for on idle clients: unheard, it would
   * crash the process, so it is heard here and marks the connection broken.
   */
  async #withClient<T>(
    run: (client: PoolClient, distrust: (error: unknown) => void) => Promise<T>,
  ): Promise<T> {
    const client = await this.#pooled().connect()
    let broken: Error | undefined
    const distrust = (error: unknown): void => {
      broken ??= error instanceof Error ? error : new Error(String(error))
    }
    client.on('error', distrust)
    try {
      return await run(client, distrust)
    } finally {
      client.off('error', distrust)
      client.release(broken)
    }
  }
}

/** Every `Index Name` in an EXPLAIN (FORMAT JSON) plan, outermost first. */
function indexNames(plan: unknown): string[] {
  const found: string[] = []
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const child of node) visit(child)
    } else if (typeof node === 'object' && node !== null) {
      const name = (node as Record<string, unknown>)['Index Name']
      if (typeof name === 'string' && !found.includes(name)) found.push(name)
      for (const value of Object.values(node)) visit(value)
    }
  }
  visit(plan)
  return found
}

/**
 * A batch's commits as rows: every change goes to the feed; the records table gets each key's
 * final state once (a delete or an upsert).
 */
function commitRows(commits: readonly StoredCommit[]): {
  deletes: { kind: string; id: string }[]
  upserts: RecordInput[]
  feed: ChangeRow[]
} {
  const feed: ChangeRow[] = []
  const final = new Map<string, StoredChange>()
  for (const commit of commits) {
    commit.changes.forEach((change, seq) => {
      feed.push({
        revision: commit.revision,
        seq,
        kind: change.kind,
        id: change.id,
        after: change.after ?? null,
      })
      // JSON.stringify of the pair cannot collide, unlike a joined string.
      final.set(JSON.stringify([change.kind, change.id]), change)
    })
  }
  const upserts: RecordInput[] = []
  const deletes: { kind: string; id: string }[] = []
  for (const change of final.values()) {
    if (change.after === undefined) deletes.push({ kind: change.kind, id: change.id })
    else upserts.push(recordToInput(change.after))
  }
  return { deletes, upserts, feed }
}

/** A kind declaration for `write_batch`, with the names of the indexes its paths get. */
function kindToInput(kind: StoredKind): Record<string, unknown> {
  return {
    kind: kind.kind,
    // Absent (SQL NULL in the column) when the kind declares no fields.
    ...(kind.fields === undefined ? {} : { fields: kind.fields }),
    indexes: kind.indexes,
    ...(kind.resident === false ? { resident: false } : {}),
    ensure: kind.indexes.map((path) => ({
      path: path.split('.'),
      ...fieldIndexNames(kind.kind, path),
    })),
  }
}

function latestById(sessions: readonly StoredSession[]): StoredSession[] {
  return [...new Map(sessions.map((session) => [session.id, session])).values()]
}

function sessionToRow(session: StoredSession): Record<string, unknown> {
  return {
    id: session.id,
    resume_token_hash: session.resumeTokenHash,
    pid: session.pid,
    name: session.name,
    ttl: session.ttl,
    children: session.children,
    last_child: session.lastChild,
    principal: session.principal,
  }
}

interface ChangeRow {
  readonly revision: number
  readonly seq: number
  readonly kind: string
  readonly id: string
  readonly after: DataspaceRecord | null
}

interface RecordInput {
  readonly kind: string
  readonly id: string
  readonly data: unknown
  readonly labels: Readonly<Record<string, string>>
  readonly owner: string | null
  readonly revision: number
  readonly created_revision: number
  readonly expires_at: number | null
}

function recordToInput(record: DataspaceRecord): RecordInput {
  return {
    kind: record.kind,
    id: record.id,
    // `data` may be `undefined`-free JSON only; a missing value is stored as JSON null.
    data: record.data ?? null,
    labels: record.labels,
    owner: record.owner,
    revision: record.revision,
    created_revision: record.createdRevision,
    expires_at: record.expiresAt ?? null,
  }
}

interface RecordRow {
  kind: string
  id: string
  data: unknown
  labels: Record<string, string>
  owner: string | null
  revision: string
  created_revision: string
  expires_at: number | null
}

/** A record as the feed stores it: the JSON of a {@link DataspaceRecord}. */
type RecordJson = DataspaceRecord

interface KindRow {
  kind: string
  fields: string[] | null
  indexes: string[]
  resident: boolean
}

interface SessionRow {
  id: string
  resume_token_hash: string
  pid: string
  name: string
  ttl: number
  children: { pid: string; name: string }[]
  last_child: number
  principal: string | null
}

interface AnswerRow {
  session: string
  call: string
  revision: string
  value: string
}

function answerFromRow(row: AnswerRow): StoredAnswer {
  return {
    session: row.session,
    call: Number(row.call),
    revision: Number(row.revision),
    value: row.value,
  }
}

function recordFromRow(row: RecordRow): DataspaceRecord {
  return {
    kind: row.kind,
    id: row.id,
    data: row.data,
    labels: row.labels,
    owner: row.owner,
    revision: Number(row.revision),
    createdRevision: Number(row.created_revision),
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
  }
}

function recordFromJson(json: RecordJson): DataspaceRecord {
  return {
    kind: json.kind,
    id: json.id,
    data: json.data,
    labels: json.labels,
    owner: json.owner,
    revision: json.revision,
    createdRevision: json.createdRevision,
    ...(json.expiresAt === undefined ? {} : { expiresAt: json.expiresAt }),
  }
}
