import { InvalidArgument } from '../../errors/index.js'
import type { RetractReason } from '../../model/types.js'
import type { ChangesPage, StoredChange } from '../../engine/ports/backend.js'
import type { Connections } from './connections.js'
import type { SchemaTables } from './migrations.js'
import { recordFromJson } from './rows.js'
import type { RecordJson } from './rows.js'

/**
 * How long the feed keeps a commit and how it is trimmed (docs/backends.md, "The feed"). A
 * commit leaves the feed once it is older than `retentionMs` OR more than `maxRevisions`
 * revisions behind the head, whichever comes first; `Infinity` turns a bound off.
 */
export interface FeedBounds {
  readonly retentionMs: number
  readonly maxRevisions: number
  /** At most one automatic trim starts per interval, after a write (`Infinity`: never). */
  readonly trimIntervalMs: number
  /** At most this many change rows per trim transaction (whole commits). */
  readonly trimRows: number
}

/**
 * An hour covers a client's reconnect and a node's restart or deploy; 100 000 revisions keep a
 * busy feed to some tens of MB. Ten seconds between trims keeps each DELETE small.
 */
export const FEED_DEFAULTS: FeedBounds = Object.freeze({
  retentionMs: 3_600_000,
  maxRevisions: 100_000,
  trimIntervalMs: 10_000,
  trimRows: 10_000,
})

/**
 * The feed's options of `postgresBackend` (docs/backends.md, "The feed"), each checked when the
 * backend is made (`InvalidArgument` names the bad one).
 */
export interface FeedOptions {
  /** A commit older than this leaves the feed (ms, default 1 hour; `Infinity`: no age bound). */
  readonly feedRetentionMs?: number
  /**
   * A commit more than this many revisions behind the head leaves the feed (default 100 000;
   * `Infinity`: no size bound).
   */
  readonly feedMaxRevisions?: number
  /**
   * At most one automatic trim starts per interval, after a write (ms, default 10 s; `0`: after
   * every write; `Infinity`: only `trimFeed()`).
   */
  readonly feedTrimIntervalMs?: number
  /** At most this many change rows per trim transaction, whole commits (default 10 000). */
  readonly feedTrimRows?: number
}

/** Checks the feed options and fills in the defaults; `InvalidArgument` names a bad one. */
export function feedBounds(options: FeedOptions): FeedBounds {
  return {
    retentionMs: bound(options, 'feedRetentionMs', FEED_DEFAULTS.retentionMs, 1, true),
    maxRevisions: bound(options, 'feedMaxRevisions', FEED_DEFAULTS.maxRevisions, 1, true),
    trimIntervalMs: bound(options, 'feedTrimIntervalMs', FEED_DEFAULTS.trimIntervalMs, 0, true),
    trimRows: bound(options, 'feedTrimRows', FEED_DEFAULTS.trimRows, 1, false),
  }
}

// PostgreSQL's int is the bound of a row count; beyond it a trim would not be small anyway.
const MAX_TRIM_ROWS = 2_147_483_647

function bound(
  options: FeedOptions,
  name: keyof FeedOptions,
  fallback: number,
  min: number,
  infinite: boolean,
): number {
  const value = options[name]
  if (value === undefined) return fallback
  const max = name === 'feedTrimRows' ? MAX_TRIM_ROWS : Number.MAX_SAFE_INTEGER
  const whole = typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
  if (whole || (infinite && value === Infinity)) return value
  throw new InvalidArgument(
    `postgres backend: ${name} must be a whole number from ${min}${
      infinite ? ', or Infinity to turn it off' : ` to ${max}`
    }; got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`,
  )
}

/** What one trim did: the floor after it, the change rows it deleted, and whether it caught up. */
export interface FeedTrim {
  readonly floor: number
  readonly deleted: number
  /** `false` when the bound on rows stopped it short: more is left to trim. */
  readonly done: boolean
}

/**
 * Trims the feed off the write path: after a write, at most once per interval, in its own
 * transactions (the schema's `trim_feed`, migration 6) on a pooled connection, never awaited by
 * the write. A trim stopped by the row bound continues at once in a new transaction, so that
 * no single one holds its locks for long. A failed trim is reported through `onError` and
 * tried again after the next write past the interval.
 */
export class FeedTrimmer {
  readonly #t: SchemaTables
  readonly #bounds: FeedBounds
  readonly #db: () => Connections
  readonly #onError: (error: Error) => void
  #last = -Infinity
  #running: Promise<void> | undefined
  /** A write finished while a trim ran: look again when it ends. */
  #again = false
  #closed = false

  constructor(
    t: SchemaTables,
    bounds: FeedBounds,
    db: () => Connections,
    onError: (error: Error) => void,
  ) {
    this.#t = t
    this.#bounds = bounds
    this.#db = db
    this.#onError = onError
  }

  /** After a write: starts a trim when the interval has passed and none is running. */
  afterWrite(): void {
    if (this.#closed || this.#bounds.trimIntervalMs === Infinity) return
    if (this.#running !== undefined) {
      this.#again = true
      return
    }
    if (Date.now() - this.#last < this.#bounds.trimIntervalMs) return
    this.#last = Date.now()
    this.#running = this.#catchUp().finally(() => {
      this.#running = undefined
      if (this.#again) {
        this.#again = false
        this.afterWrite()
      }
    })
  }

  async #catchUp(): Promise<void> {
    try {
      while (!this.#closed && !(await this.trim()).done) {
        // Let queued writes and reads through between two bounded trims.
        await new Promise((resolve) => setImmediate(resolve))
      }
    } catch (error) {
      if (!this.#closed) this.#onError(error instanceof Error ? error : new Error(String(error)))
    }
  }

  /** One bounded trim, in one transaction. */
  async trim(): Promise<FeedTrim> {
    const { retentionMs, maxRevisions, trimRows } = this.#bounds
    const { rows } = await this.#db().query<{ floor: string; deleted: string; done: boolean }>(
      `SELECT floor, deleted, done FROM ${this.#t.trimFeed}($1, $2, $3)`,
      [
        maxRevisions === Infinity ? null : maxRevisions,
        retentionMs === Infinity ? null : retentionMs,
        trimRows,
      ],
    )
    const row = rows[0]!
    return { floor: Number(row.floor), deleted: Number(row.deleted), done: row.done }
  }

  /** Stops automatic trims and waits for a running one (before the pool ends). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#running
  }
}

export interface FeedRow {
  floor: string
  head: string
  revision: string | null
  kind: string | null
  id: string | null
  after: RecordJson | null
  reason: string | null
}

/**
 * Reads the feed after `revision`: one statement, so the floor, the head and the rows come from
 * one snapshot, and a trim (which moves the floor with its DELETE) is seen whole or not at all.
 * Revisions are gap-free up to the head, so a revision in the page without rows is an empty
 * (refused) commit, never a trimmed one: trimmed ones are below the floor.
 */
export async function readFeed(
  db: Connections,
  t: SchemaTables,
  revision: number,
  limit: number,
): Promise<ChangesPage> {
  const count = feedCount(revision, limit)
  const { rows } = await db.query<FeedRow>(feedQuery(t, '$1', '$2'), [revision, count])
  return feedPage(rows, revision, count)
}

/** How many commits a read of the feed after `revision` asks for (`limit`, checked). */
export function feedCount(revision: number, limit: number): number {
  if (!Number.isSafeInteger(revision) || revision < 0) {
    throw new InvalidArgument(`changesSince: revision must be a whole number ≥ 0, got ${revision}`)
  }
  // Infinity reads up to the head; NaN or a negative limit reads nothing.
  return limit > 0 ? Math.min(Math.floor(limit), Number.MAX_SAFE_INTEGER) : 0
}

/**
 * The statement that reads the feed after `revision` (at most `count` commits): parameters
 * (`$1`, `$2`), or whole numbers inlined where a simple query takes no parameters (the write
 * turn's lock, turn-lock.ts). The one-row tables are read as scalars so that the planner knows
 * they hold one row: a join with them is estimated in the millions and pays for JIT (tens of ms).
 */
export function feedQuery(t: SchemaTables, revision: string, count: string): string {
  return `SELECT m.floor, m.head, c.revision, c.kind, c.id, c.after, c.reason
     FROM (SELECT (SELECT floor FROM ${t.feed}) AS floor,
             (SELECT revision FROM ${t.revision}) AS head) m
     LEFT JOIN ${t.changes} c ON ${revision} >= m.floor AND c.revision > ${revision}
       AND c.revision <= least(${revision} + ${count}, m.head)
     ORDER BY c.revision, c.seq`
}

/** The page `feedQuery`'s rows stand for. */
export function feedPage(rows: readonly FeedRow[], revision: number, count: number): ChangesPage {
  const floor = Number(rows[0]!.floor)
  const head = Number(rows[0]!.head)
  if (revision < floor) return { trimmed: true, floor, head }
  const last = Math.min(revision + count, head)
  const commits: { revision: number; changes: StoredChange[] }[] = []
  for (let r = revision + 1; r <= last; r++) commits.push({ revision: r, changes: [] })
  for (const row of rows) {
    if (row.revision === null) continue
    commits[Number(row.revision) - revision - 1]!.changes.push({
      kind: row.kind!,
      id: row.id!,
      after: row.after === null ? undefined : recordFromJson(row.after),
      // Written by write_batch from a RetractReason; NULL before migration 8 (read as `retract`).
      ...(row.after === null && isReason(row.reason) ? { reason: row.reason } : {}),
    })
  }
  return { trimmed: false, floor, head, commits }
}

const REASONS: ReadonlySet<string> = new Set<RetractReason>([
  'retract',
  'owner-exit',
  'expired',
  'deleted',
  'unmatched',
  'refused',
])

/** A stored reason this code knows (one written by newer code is read as none: `retract`). */
function isReason(value: string | null): value is RetractReason {
  return value !== null && REASONS.has(value)
}
