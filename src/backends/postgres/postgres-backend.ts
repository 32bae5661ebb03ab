import pg from 'pg'
import type { PoolClient, PoolConfig } from 'pg'
import type { DataspaceRecord, Selector } from '../../model/types.js'
import { Conflict, InvalidArgument, ProcessExited, Unavailable } from '../../errors/index.js'
import type {
  Backend,
  BackendPlan,
  ChangesPage,
  ClusterSeam,
  FollowerSeam,
  LoadedState,
  QueryPage,
  SessionMatch,
  WriteBatch,
} from '../../engine/ports/backend.js'
import { Connections } from './connections.js'
import { Doorbell, feedChannel } from './doorbell.js'
import { PostgresFollower } from './follower.js'
import { PostgresMembership } from './membership.js'
import { feedBounds, FeedTrimmer, readFeed } from './feed.js'
import type { FeedOptions, FeedTrim } from './feed.js'
import {
  fieldIndexNames,
  migrate,
  REVISION_CONFLICT,
  schemaTables,
  SESSION_LOST,
} from './migrations.js'
import type { SchemaTables } from './migrations.js'
import { RECORD_COLUMNS, selectQuery } from './pushdown.js'
import { answerFromRow, indexNames, kindFromRow, recordFromRow, sessionFromRow } from './rows.js'
import type { AnswerRow, KindRow, RecordRow, SessionRow } from './rows.js'
import { SchemaLock } from './schema-lock.js'
import type { SchemaLockMode } from './schema-lock.js'
import { SessionLeases } from './session-leases.js'
import { TurnLock } from './turn-lock.js'
import { writeBatchStatement } from './write-batch.js'

export interface PostgresBackendOptions extends FeedOptions {
  /** A connection string: `postgres://user@host:5432/db`. */
  readonly url: string
  /** The schema holding the tables (default `dataspace`); `[a-z_][a-z0-9_]*`, at most 63 bytes. */
  readonly schema?: string
  /** Extra `pg.Pool` settings (`max`, `idleTimeoutMillis`, `ssl`, …). */
  readonly pool?: Omit<PoolConfig, 'connectionString'>
  /**
   * Errors of idle pooled connections (the server restarted): the pool drops the connection and
   * the next query opens a new one, but an unhandled `error` event would crash the process.
   * A failed automatic trim of the feed is reported here too (it is tried again later).
   */
  readonly onError?: (error: Error) => void
  /**
   * Opens the schema as a **follower** of the server that writes it (docs/backends.md,
   * "Followers"): no schema lock, no sessions loaded, every `write` refused, and a `follower`
   * seam to hear the writer's doorbell and read its kinds. Default `false`: the writer.
   */
  readonly follow?: boolean
  /**
   * Opens the schema as a **node of a cluster** (docs/backends.md, "Cluster nodes"): several
   * servers write it, each while it holds the write turn (`cluster.lock` … `cluster.unlock`). It
   * takes the schema lock shared with the other nodes (a single-node server is refused while
   * nodes are open, and the reverse), loads no sessions, and has a `cluster` seam. Not with
   * `follow`. Default `false`.
   */
  readonly cluster?: boolean
  /**
   * How long a statement of the write, read and feed paths waits for its answer, in ms (default
   * 30 000; `Infinity`: for ever). A network that silently drops packets would otherwise hold a
   * write (and every write queued behind it) or a follower's feed read until TCP gives up,
   * about 15 minutes on Linux, while nothing reports a failure. A write that timed out is
   * retried on a new connection; if its COMMIT did happen, the retry is recognised by its batch
   * id and nothing is written twice. Loading the state at `open` has no such bound.
   */
  readonly queryTimeoutMs?: number
}

/** See `PostgresBackendOptions.queryTimeoutMs`. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000

/** The PostgreSQL backend: a `Backend`, and a way to trim its feed now. */
export interface PostgresBackend extends Backend {
  changesSince(revision: number, limit: number): Promise<ChangesPage>
  /**
   * One bounded trim of the feed now, as the automatic ones after writes (at most
   * `feedTrimRows` rows; `done: false` when more is left). For tests and operators.
   */
  trimFeed(): Promise<FeedTrim>
}

/**
 * What every connection (the pool's and the schema lock's) gets unless `pool` says otherwise: a
 * database that accepts the TCP connection and never answers (a firewall dropping packets) fails
 * the connect after 10 s instead of hanging it forever, and TCP keepalive lets a connection to a
 * host that vanished be noticed.
 */
export const POSTGRES_CONNECTION_DEFAULTS = Object.freeze({
  connectionTimeoutMillis: 10_000,
  keepAlive: true,
})

/**
 * The PostgreSQL backend (docs/backends.md, "PostgreSQL"): records, a change feed, kinds and
 * sessions in one schema; every `write` is one transaction that locks the single revision row,
 * so revision order is commit order; selectors on declared fields and labels are pushed down to
 * expression and GIN indexes (`query`, `explainQuery`). Opened with `follow: true`, it is a
 * read-only follower of the server that writes the schema. Its parts: the connections
 * (connections.ts), the schema lock (schema-lock.ts), node membership (membership.ts), the feed
 * (feed.ts), the doorbell a writer rings after its writes (doorbell.ts), what a follower listens
 * to and reads (follower.ts), migrations, the write-batch statement (write-batch.ts), row
 * decoding (rows.ts) and query push-down (pushdown.ts).
 *
 * @example
 * const backend = postgresBackend({ url: 'postgres://postgres@127.0.0.1:5432/app' })
 * const state = await backend.open()
 */
export function postgresBackend(options: PostgresBackendOptions): PostgresBackend {
  if (typeof options.url !== 'string' || options.url.length === 0) {
    throw new InvalidArgument('postgres backend needs a connection url')
  }
  if (options.follow !== undefined && typeof options.follow !== 'boolean') {
    throw new InvalidArgument(
      `postgres backend: follow must be true or false; got ${JSON.stringify(options.follow)}`,
    )
  }
  if (options.cluster !== undefined && typeof options.cluster !== 'boolean') {
    throw new InvalidArgument(
      `postgres backend: cluster must be true or false; got ${JSON.stringify(options.cluster)}`,
    )
  }
  if (options.follow === true && options.cluster === true) {
    throw new InvalidArgument(
      'postgres backend: follow and cluster exclude each other: a follower never writes, a ' +
        'cluster node writes in turn with the others; choose one',
    )
  }
  const timeout = options.queryTimeoutMs
  if (
    timeout !== undefined &&
    timeout !== Infinity &&
    !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 2 ** 31 - 1)
  ) {
    throw new InvalidArgument(
      `postgres backend: queryTimeoutMs must be a whole number of ms from 1 to ${2 ** 31 - 1}, or Infinity; got ${String(timeout)}`,
    )
  }
  const schemaName = options.schema ?? 'dataspace'
  return new PgBackend(options, schemaName, schemaTables(schemaName))
}

class PgBackend implements PostgresBackend {
  readonly name = 'postgres'
  readonly capabilities = Object.freeze({ durable: true, changes: true, query: true })
  /** The `nodes` table: the servers on this schema (membership.ts). */
  readonly membership: PostgresMembership
  /** Only on a follower (`follow: true`): the engine tells the two apart by its presence. */
  declare readonly follower?: FollowerSeam
  /** Only on a cluster node (`cluster: true`). */
  declare readonly cluster?: ClusterSeam
  /** What a follower and a cluster node read of the store besides the feed (follower.ts). */
  readonly #follower: PostgresFollower | undefined
  /** A cluster node's write turn (turn-lock.ts). */
  readonly #turn: TurnLock | undefined
  /** `follow: true`: writes nothing, takes no schema lock. */
  readonly #follows: boolean
  /** `cluster: true`: takes the schema lock shared, loads no sessions. */
  readonly #clustered: boolean
  /** The writer's NOTIFY after each write that stored commits (doorbell.ts). */
  readonly #doorbell: Doorbell
  readonly #options: PostgresBackendOptions
  readonly #schemaName: string
  readonly #t: SchemaTables
  #db: Connections | undefined
  /**
   * The schema's lock, held from open to close (schema-lock.ts): exclusive for one server per
   * schema, shared by cluster nodes; none on a follower.
   */
  #lock: SchemaLock | undefined
  readonly #trimmer: FeedTrimmer
  /** A cluster node's session leases (session-leases.ts). */
  readonly #leases: SessionLeases

  constructor(options: PostgresBackendOptions, schemaName: string, tables: SchemaTables) {
    this.#options = { ...options, pool: { ...POSTGRES_CONNECTION_DEFAULTS, ...options.pool } }
    this.#schemaName = schemaName
    this.#t = tables
    this.membership = new PostgresMembership(tables, () => this.#pooled())
    const onError = (error: Error): void => this.#options.onError?.(error)
    this.#trimmer = new FeedTrimmer(tables, feedBounds(options), () => this.#pooled(), onError)
    this.#leases = new SessionLeases(tables, schemaName, () => this.#pooled())
    const channel = feedChannel(schemaName)
    this.#doorbell = new Doorbell(channel, () => this.#pooled(), onError)
    this.#follows = options.follow === true
    this.#clustered = options.cluster === true
    // A cluster node follows the other nodes between its turns: it reads as a follower does.
    const follower =
      this.#follows || this.#clustered
        ? new PostgresFollower(
            this.#options,
            schemaName,
            channel,
            tables,
            () => this.#pooled(),
            () =>
              this.#pooled().transaction('BEGIN ISOLATION LEVEL REPEATABLE READ', (c) =>
                this.#load(c),
              ),
          )
        : undefined
    this.#follower = follower
    if (follower === undefined) return
    if (this.#follows) this.follower = follower
    if (this.#clustered) {
      const turn = new TurnLock(
        this.#options,
        schemaName,
        tables,
        options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      )
      this.#turn = turn
      this.cluster = Object.freeze({
        listen: (ring: () => void) => follower.listen(ring),
        kinds: () => follower.kinds(),
        snapshot: () => follower.snapshot(),
        lock: (timeoutMs: number, after: number, limit: number) =>
          turn.lock(timeoutMs, after, limit),
        unlock: () => turn.unlock(),
        renewSessions: (node: string, ids: readonly string[]) => this.#leases.renew(node, ids),
        expireSession: (id: string, node: string) => this.#leases.expire(id, node),
        claimExpiredSessions: (limit: number, claimMs: number) =>
          this.#leases.claimExpired(limit, claimMs),
        takeOverSession: (id: string, node: string, match: SessionMatch) =>
          this.#leases.takeOver(id, node, match),
      })
    }
  }

  /** The schema lock this node holds: shared by cluster nodes, else the one writer's. */
  get #lockMode(): SchemaLockMode {
    return this.#clustered ? 'shared' : 'exclusive'
  }

  async open(): Promise<LoadedState> {
    // First, before migrating: a second writer on the schema is refused before it touches it
    // (a cluster node beside a single-node writer, or the reverse, too). Followers take no
    // lock: any number of them share the schema with its writers.
    if (!this.#follows) {
      this.#lock = await SchemaLock.acquire(this.#options, this.#schemaName, this.#lockMode).catch(
        (error: unknown) => {
          throw connectFailure(error, this.#options)
        },
      )
    }
    try {
      return await this.#openLocked()
    } catch (error) {
      await this.close()
      throw connectFailure(error, this.#options)
    }
  }

  async #openLocked(): Promise<LoadedState> {
    const db = new Connections(
      this.#options.url,
      this.#options.pool,
      (error) => this.#options.onError?.(error),
      this.#options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
    )
    this.#db = db
    const client = await db.connect()
    try {
      // A follower migrates too (under migrate's own lock), so that it may start before the
      // writer; a follower on older code than the schema is refused there, like any node.
      await migrate(client, this.#schemaName)
    } finally {
      client.release()
    }
    // One snapshot for everything, so that records, kinds and revision agree.
    return db.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ', (c) => this.#load(c))
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
    // The schema's creation (its first migration's time) names this store: nodes that open it
    // agree on it, and a schema dropped and created again gets another.
    const created = await client.query<{ at: string }>(
      `SELECT (extract(epoch FROM applied_at) * 1000000)::bigint::text AS at
       FROM ${t.migrations} WHERE version = 1`,
    )
    const base = {
      store: `postgres:${this.#schemaName}@${created.rows[0]?.at ?? '0'}`,
      revision: Number(revision.rows[0]?.revision ?? 0),
      records: records.rows.map(recordFromRow),
      kinds: kinds.rows.map(kindFromRow),
      ...(owned.rows.length === 0
        ? {}
        : {
            owned: owned.rows.map((row) => ({
              kind: row.kind,
              owner: row.owner,
              count: Number(row.count),
            })),
          }),
    }
    // The writer's sessions are not a follower's to resume, and index repair is the writer's.
    // A cluster node's sessions belong to the node holding each lease (taken over one by one);
    // and several nodes would repair at once (the node that declares a kind creates its indexes).
    if (this.#follower !== undefined) return { ...base, sessions: [] }
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
      ...base,
      sessions: sessions.rows.map(sessionFromRow),
      ...(answers.rows.length === 0 ? {} : { answers: answers.rows.map(answerFromRow) }),
    }
  }

  async write(batch: WriteBatch): Promise<void> {
    if (this.#follows) throw this.#followsRefusal('writes')
    const commits = batch.commits
    for (let i = 1; i < commits.length; i++) {
      if (commits[i]!.revision !== commits[i - 1]!.revision + 1) {
        throw new Conflict(
          `postgres backend: commit ${commits[i]!.revision} does not follow ${commits[i - 1]!.revision} in one batch`,
        )
      }
    }
    await this.#holdLock()
    const statement = writeBatchStatement(this.#t, batch)
    if (statement === undefined) return
    try {
      // A cluster node's commits go through the session that holds the write turn: the turn is
      // then a fence, not only a queue (turn-lock.ts `write`). Kinds alone go through the pool.
      if (this.#turn !== undefined && commits.length > 0) {
        await this.#turn.write(
          statement.text,
          statement.values,
          this.#options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
        )
      } else {
        await this.#pooled().single(statement.text, statement.values)
      }
    } catch (error) {
      if (error instanceof pg.DatabaseError && error.code === REVISION_CONFLICT) {
        const stored = Number(error.detail)
        const who = this.#clustered ? 'another node wrote first' : 'a second writer on this schema?'
        throw new Conflict(
          `postgres backend: commit ${commits[0]?.revision} does not follow the stored revision ${stored} (${who})`,
          stored,
          { cause: error },
        )
      }
      if (error instanceof pg.DatabaseError && error.code === SESSION_LOST) {
        // Refused (refusesContent): the runtime isolates the commit whose session was lost.
        // The pid is not known here (the error names the session); the runtime only reads the code.
        throw new ProcessExited(`postgres backend: ${error.message}`, '', { cause: error })
      }
      throw error
    }
    if (commits.length === 0) return
    // Off the write path: the ring and a trim run in statements of their own, unawaited. A
    // retry of a batch whose COMMIT's answer was lost rings too: that COMMIT rang nobody.
    this.#doorbell.ring(commits[commits.length - 1]!.revision)
    this.#trimmer.afterWrite()
  }

  /** What a follower answers to anything that would write: it leaves that to the writer. */
  #followsRefusal(what: string): Unavailable {
    return new Unavailable(
      `postgres backend: this node follows schema "${this.#schemaName}" (follow: true) and never ${what}`,
    )
  }

  /**
   * The errors that mean PostgreSQL refuses a value or a row (docs/backends.md, "Refused writes"):
   * SQLSTATE class 22 (data exception: `\u0000` or a lone surrogate in JSON, a timestamp or
   * number out of range), 23 (a constraint), 54 (a program limit: a row or index entry too
   * large), P0001 (raised by a trigger), or a value the client could not encode (`RangeError`,
   * `TypeError`). Connection errors, class 08, 40, 53, 55, 57, 58, XX and our own revision
   * conflict (`DS409`) are retried. (A lost session's commit, `DS410`, is thrown as
   * `ProcessExited`, which every backend's refusals include: refusal.ts.)
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

  changesSince(revision: number, limit: number): Promise<ChangesPage> {
    return readFeed(this.#pooled(), this.#t, revision, limit)
  }

  trimFeed(): Promise<FeedTrim> {
    if (this.#follows) return Promise.reject(this.#followsRefusal('trims the feed'))
    return this.#trimmer.trim()
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
    await this.#follower?.close()
    await this.#turn?.close()
    await this.#doorbell.close()
    await this.#trimmer.close()
    const db = this.#db
    this.#db = undefined
    await db?.end()
    const lock = this.#lock
    this.#lock = undefined
    await lock?.release()
  }

  /**
   * Writes only under the schema's lock (a cluster node's: shared). PostgreSQL drops it with its
   * connection, and another server may take it meanwhile: then nothing is written (the runtime
   * retries the batch, its writers get `Unavailable`) until the lock is ours again on a new
   * connection.
   */
  async #holdLock(): Promise<void> {
    const lock = this.#lock
    if (lock === undefined) throw new Error('postgres backend: write before open')
    const lost = lock.lost
    if (lost === undefined) return
    this.#options.onError?.(lost)
    await lock.release()
    try {
      this.#lock = await SchemaLock.acquire(this.#options, this.#schemaName, this.#lockMode).catch(
        (error: unknown) => {
          throw connectFailure(error, this.#options)
        },
      )
    } catch (error) {
      throw new Unavailable(
        `postgres backend: lost the lock on schema "${this.#schemaName}" (${lost.message}) and ` +
          `cannot take it back: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      )
    }
  }

  #pooled(): Connections {
    if (this.#db === undefined) throw new Error('postgres backend: used before open')
    return this.#db
  }
}

/**
 * A connect that timed out, as `Unavailable` naming the host and the timeout (pg's own message,
 * "timeout expired", says neither). Other errors pass through as they are.
 */
function connectFailure(error: unknown, options: PostgresBackendOptions): unknown {
  if (!(error instanceof Error) || !/timeout/i.test(error.message)) return error
  let where = 'the database'
  try {
    const url = new URL(options.url)
    where = `${url.hostname}:${url.port || '5432'}`
  } catch {
    // An unparsable URL fails elsewhere with its own message.
  }
  const ms = options.pool?.connectionTimeoutMillis
  return new Unavailable(
    `PostgreSQL at ${where} did not answer within ${ms} ms (pool.connectionTimeoutMillis): ${error.message}`,
    { cause: error },
  )
}
