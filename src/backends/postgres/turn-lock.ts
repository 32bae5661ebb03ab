import pg from 'pg'
import type { PoolConfig } from 'pg'
import { InvalidArgument, Unavailable } from '../../errors/index.js'
import { dedicatedClientConfig, endSoon } from './connections.js'
import type { SchemaTables } from './migrations.js'
import { feedCount, feedPage, feedQuery } from './feed.js'
import type { FeedRow } from './feed.js'
import type { ChangesPage } from '../../engine/ports/backend.js'

// The first key of the write turn's advisory lock: "dt" in ASCII, beside the schema lock's "ds"
// (schema-lock.ts); the second is hashtext(schema), as there.
export const TURN_CLASS = 0x6474

/**
 * What the turn's connection sets once, after it connects (one round trip).
 *
 * READ COMMITTED whatever the role's or the database's `default_transaction_isolation`: the
 * lock's statements share one implicit transaction, and under REPEATABLE READ its snapshot would
 * be taken when the lock is asked for, before the wait, so the feed read after the grant would
 * miss the commits made meanwhile.
 *
 * The server's TCP keepalive, in seconds: the turn is freed when PostgreSQL ends the session,
 * and a node whose host vanished (no FIN, no RST) would otherwise hold it until the server's
 * keepalive gives up, about 2 hours with the system's defaults. An idle connection is probed
 * after 10 s, every 5 s, and dropped after 3 unanswered probes (about 25 s); `tcp_user_timeout`
 * (PostgreSQL 12 and later; skipped where unknown) drops it when data the server sent goes
 * unacknowledged for 30 s. Over a Unix-domain socket PostgreSQL ignores them.
 */
const TURN_SESSION =
  'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; ' +
  'SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; ' +
  'SET tcp_keepalives_count = 3; ' +
  "SELECT set_config('tcp_user_timeout', '30000', false) " +
  "WHERE EXISTS (SELECT 1 FROM pg_settings WHERE name = 'tcp_user_timeout')"

/** PostgreSQL's SQLSTATE for a lock not granted within `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03'

interface TurnLockOptions {
  readonly url: string
  readonly pool?: Omit<PoolConfig, 'connectionString'>
}

/**
 * A cluster node's write turn (docs/cluster.md, "The write turn"): a session-level
 * `pg_advisory_lock` on a connection of its own, which nodes queue for in PostgreSQL. The
 * connection is opened at the first `lock` and again after it died; it is named
 * `dataspace node schema=<schema> pid=<pid>` so an operator finds it in `pg_stat_activity`.
 *
 * PostgreSQL frees the lock with its connection, so every failure ends the connection: a turn
 * is then never left held by a node that no longer knows it holds it. Commits are written on
 * the turn's session (`write`), so the turn fences them; `write_batch` still refuses a batch
 * that does not follow the stored revision. The connection is READ COMMITTED and has the
 * server's TCP keepalive in seconds (TURN_SESSION).
 */
export class TurnLock {
  readonly #options: TurnLockOptions
  readonly #schema: string
  readonly #t: SchemaTables
  readonly #queryTimeoutMs: number
  #client: pg.Client | undefined
  /** A `lock` under way, or the turn held: a second `lock` now is a caller's bug. */
  #busy = false
  /** Between the caller's `lock` and `unlock`: its turn, even while its connection is replaced. */
  #owned = false
  #closed = false

  /**
   * @param queryTimeoutMs how long a statement may go unanswered beyond its own wait (the
   *   backend's `queryTimeoutMs`; `Infinity`: for ever).
   */
  constructor(
    options: TurnLockOptions,
    schema: string,
    tables: SchemaTables,
    queryTimeoutMs: number,
  ) {
    this.#options = options
    this.#schema = schema
    this.#t = tables
    this.#queryTimeoutMs = queryTimeoutMs
  }

  /**
   * Waits for the turn at most `timeoutMs` (PostgreSQL's `lock_timeout`, local to the lock's
   * statements; the client gives up `queryTimeoutMs` later, should the database or the network
   * fall silent), then reads the feed past `after` (at most `limit` commits) on the same
   * connection, in a statement after the grant, and resolves with that page: its head is the
   * stored revision, and every commit up to it is in the feed. A timeout is `Unavailable`. The
   * caller's commits then go through `write`, on this session.
   */
  async lock(timeoutMs: number, after: number, limit: number): Promise<ChangesPage> {
    const page = await this.#take(timeoutMs, after, limit)
    this.#owned = true
    return page
  }

  async #take(timeoutMs: number, after = 0, limit = 0): Promise<ChangesPage> {
    const count = feedCount(after, limit)
    if (!(timeoutMs > 0)) {
      throw new InvalidArgument(
        `postgres backend: lock(timeoutMs) needs a positive number of ms, got ${timeoutMs}`,
      )
    }
    if (this.#busy) {
      throw new Error('postgres backend: lock() while the write turn is held or being taken')
    }
    if (this.#closed) throw new Unavailable('postgres backend: lock() after close')
    this.#busy = true
    let client: pg.Client | undefined
    try {
      client = await this.#connected()
      // `0` is no limit to PostgreSQL; a wait beyond its largest is as good as for ever.
      const wait = timeoutMs === Infinity ? 0 : Math.min(Math.ceil(timeoutMs), 2 ** 31 - 1)
      const guard = timeoutMs + this.#queryTimeoutMs
      // One round trip, three statements: under READ COMMITTED (TURN_SESSION) each takes its own
      // snapshot, so the feed (and its head, the stored revision) is read after the lock was
      // granted, not before the wait. The timeout is LOCAL to that implicit transaction: the
      // writes of the turn on this session (and the CREATE INDEX of a kind they declare) wait
      // for their locks as any statement does. The schema name is `[a-z_][a-z0-9_]*` (checked
      // by schemaTables) and the two numbers whole (feedCount): safe in the text.
      const results = (await client.query({
        text:
          `SET LOCAL lock_timeout = ${wait}; ` +
          `SELECT pg_advisory_lock(${TURN_CLASS}, hashtext('${this.#schema}')); ` +
          feedQuery(this.#t, String(after), String(count)),
        ...(guard === Infinity ? {} : { query_timeout: Math.min(guard, 2 ** 31 - 1) }),
      } as pg.QueryConfig)) as unknown as pg.QueryResult<FeedRow>[]
      const rows = results[2]?.rows
      if (rows === undefined || rows.length === 0) throw new Error('the revision row is missing')
      return feedPage(rows, after, count)
    } catch (error) {
      this.#busy = false
      if (client !== undefined) await this.#drop(client)
      throw this.#failure(error, timeoutMs)
    }
  }

  /**
   * Runs a write (`write_batch`) on the turn's own connection, taking the turn again first if
   * its connection died (waiting at most `timeoutMs`). On the session that holds the lock, the
   * write is fenced by it: PostgreSQL frees a session's lock only when the session ends, after
   * the statement it is running has committed or rolled back. A write on another connection
   * could still commit after a dropped lock connection let the next node in, and that node's
   * batch would then be refused (`Conflict`), though it did nothing wrong. A write without the
   * caller's `lock` takes the turn for itself and gives it back after; while a `lock` or an
   * `unlock` is under way it is refused, as a second `lock` is (a caller's bug).
   */
  async write(text: string, values: readonly unknown[], timeoutMs: number): Promise<void> {
    // Not the caller's turn (a write without `lock`, as a tool might make): taken for this write.
    const once = !this.#owned
    if (once && this.#busy) {
      // A `lock` (or an `unlock`, or another such write) is under way: taking the turn beside it
      // would open a second connection that holds the lock unknown to anyone, or give back the
      // turn the caller of `lock` is about to be granted.
      throw new Error(
        'postgres backend: write() without lock() while the write turn is held or being taken',
      )
    }
    if (this.#client === undefined || !this.#busy) {
      // Not held, or lost with its connection (the write itself checks the stored revision).
      this.#busy = false
      await this.#take(timeoutMs)
    }
    try {
      await this.#write(text, values)
    } finally {
      if (once) await this.unlock()
    }
  }

  async #write(text: string, values: readonly unknown[]): Promise<void> {
    const client = this.#client
    if (client === undefined)
      throw new Unavailable('postgres backend: the write turn’s connection closed')
    try {
      await client.query({
        text,
        values: [...values],
        ...(this.#queryTimeoutMs === Infinity ? {} : { query_timeout: this.#queryTimeoutMs }),
      } as pg.QueryConfig)
    } catch (error) {
      // A statement error (a conflict, a refused value) leaves the session and the turn fine.
      if (!(error instanceof pg.DatabaseError)) {
        this.#busy = false
        await this.#drop(client)
      }
      throw error
    }
  }

  /** Gives the turn back; never rejects (on a failure the connection is ended: that frees it). */
  async unlock(): Promise<void> {
    this.#owned = false
    const client = this.#client
    if (!this.#busy || client === undefined) {
      // Not held: the connection died (and the lock with it), or lock() failed.
      this.#busy = false
      return
    }
    try {
      await client.query({
        text: `SELECT pg_advisory_unlock(${TURN_CLASS}, hashtext('${this.#schema}'))`,
        ...(this.#queryTimeoutMs === Infinity ? {} : { query_timeout: this.#queryTimeoutMs }),
      } as pg.QueryConfig)
    } catch {
      await this.#drop(client)
    } finally {
      this.#busy = false
    }
  }

  /** Ends the connection (and with it a turn still held). */
  async close(): Promise<void> {
    this.#closed = true
    const client = this.#client
    this.#client = undefined
    await endSoon(client)
  }

  async #connected(): Promise<pg.Client> {
    if (this.#client !== undefined) return this.#client
    const client = new pg.Client(
      dedicatedClientConfig(
        this.#options,
        `dataspace node schema=${this.#schema} pid=${process.pid}`,
      ),
    )
    // A connection that dies holds nothing any more (PostgreSQL freed the lock): the next lock()
    // opens a new one. Unheard, its 'error' would crash the process.
    const lost = (): void => {
      if (this.#client !== client) return
      this.#client = undefined
      this.#busy = false
    }
    client.on('error', lost)
    client.on('end', lost)
    try {
      await client.connect()
      await client.query({
        text: TURN_SESSION,
        ...(this.#queryTimeoutMs === Infinity ? {} : { query_timeout: this.#queryTimeoutMs }),
      } as pg.QueryConfig)
    } catch (error) {
      await endSoon(client)
      throw error
    }
    if (this.#closed) {
      await endSoon(client)
      throw new Unavailable('postgres backend: lock() after close')
    }
    this.#client = client
    return client
  }

  async #drop(client: pg.Client): Promise<void> {
    if (this.#client === client) this.#client = undefined
    await endSoon(client)
  }

  #failure(error: unknown, timeoutMs: number): unknown {
    const turn = `the write turn of schema "${this.#schema}"`
    if (error instanceof pg.DatabaseError && error.code === LOCK_NOT_AVAILABLE) {
      return new Unavailable(
        `postgres backend: ${turn} was not granted within ${timeoutMs} ms (another node holds it)`,
        { cause: error },
      )
    }
    if (error instanceof Error && /timeout/i.test(error.message)) {
      return new Unavailable(
        `postgres backend: PostgreSQL did not answer the request for ${turn} within ` +
          `${timeoutMs} + ${this.#queryTimeoutMs} ms (${error.message})`,
        { cause: error },
      )
    }
    return error
  }
}
