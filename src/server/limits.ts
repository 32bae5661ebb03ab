import type { Logger } from 'pino'
import type { Dataspace } from '../engine/index.js'
import { RateLimited, TooLarge } from '../errors/index.js'
import type { ServerLimits } from './options.js'
import type { Session } from './session-table.js'

/** The limits whose hits are counted (`dataspace_limit_hits_total{limit}`) and logged. */
export const LIMIT_NAMES = [
  'maxRecordsPerSession',
  'maxStreamsPerSession',
  'maxCallsPerSecond',
  'maxBodyBytes',
  'maxFrameBytes',
  'wsMaxBufferBytes',
  'sseBufferBytes',
] as const satisfies readonly (keyof ServerLimits)[]

export type LimitName = (typeof LIMIT_NAMES)[number]

/** Who a stream or call counts against: a session, else a token, else a client address. */
export interface LimitKey {
  /** Map key: `s:<session id>`, `t:<token name>` or `a:<address>`. Never logged. */
  readonly id: string
  /** What messages and logs name: the session's pid, the token name or the address. */
  readonly label: string
}

/** The key of a session (its id stays secret: the label is the pid). */
export function sessionKey(session: Session): LimitKey {
  return { id: `s:${session.id}`, label: `session ${session.process.id}` }
}

/** The key of a request without a session: its token when auth is on, else its address. */
export function callerKey(token: string | undefined, address: string | undefined): LimitKey {
  if (token !== undefined) return { id: `t:${token}`, label: `token ${token}` }
  const where = address ?? 'unknown'
  return { id: `a:${where}`, label: `client ${where}` }
}

interface Bucket {
  tokens: number
  /** When `tokens` was last brought up to date (ms, from `performance.now()`). */
  at: number
}

// Idle rate buckets are swept after this many new ones, so the map stays bounded by activity.
const SWEEP_EVERY = 1024
// A limit is logged at most once per this many ms (a flood of 429s must not flood the log).
const LOG_EVERY_MS = 1000

/**
 * The per-session limits the server enforces on both transports: records owned, open streams
 * and call rate. Every hit is counted (`onHit`, the limit-hits metric) and logged, at most once
 * a second per limit with a count of the hits in between.
 */
export class LimitGuard {
  readonly #ds: Dataspace
  readonly #limits: ServerLimits
  readonly #logger: Logger
  readonly #onHit: (limit: LimitName) => void
  readonly #streams = new Map<string, number>()
  readonly #buckets = new Map<string, Bucket>()
  #created = 0
  readonly #lastLog = new Map<LimitName, { at: number; suppressed: number }>()

  constructor(
    ds: Dataspace,
    limits: ServerLimits,
    logger: Logger,
    onHit: (limit: LimitName) => void,
  ) {
    this.#ds = ds
    this.#limits = limits
    this.#logger = logger
    this.#onHit = onHit
  }

  /** Counts and logs one hit of `limit`; `fields` go into the log line. */
  hit(limit: LimitName, fields: Record<string, unknown> = {}): void {
    this.#onHit(limit)
    const now = Date.now()
    const last = this.#lastLog.get(limit)
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.suppressed++
      return
    }
    const suppressed = last?.suppressed ?? 0
    this.#lastLog.set(limit, { at: now, suppressed: 0 })
    this.#logger.warn({ limit, value: this.#limits[limit], ...fields, suppressed }, 'limit hit')
  }

  /**
   * `TooLarge` if `session`'s processes, which own some records, would own more than
   * `maxRecordsPerSession` after `adding` more. Counting reads the engine's per-owner index
   * (`ds.ownedCount`), so it costs O(kinds × processes of the session), not O(records).
   */
  checkRecords(session: Session, adding: number): void {
    if (adding <= 0) return
    const max = this.#limits.maxRecordsPerSession
    let owned = 0
    for (const pid of session.processes.keys()) owned += this.#ds.ownedCount(pid)
    if (owned + adding <= max) return
    this.hit('maxRecordsPerSession', { pid: session.process.id, owned })
    throw new TooLarge(
      `session ${session.process.id} owns ${owned} records (its child processes included); ` +
        `${adding} more would exceed limits.maxRecordsPerSession (${max}). Retract records ` +
        `first, or raise the limit: createServer({ limits: { maxRecordsPerSession } }) or ` +
        `dataspace serve --limits maxRecordsPerSession=N`,
      { limit: 'maxRecordsPerSession' },
    )
  }

  /** Open streams counted against `key`. */
  streams(key: LimitKey): number {
    return this.#streams.get(key.id) ?? 0
  }

  /**
   * Counts one more open stream against `key`, or `TooLarge` at `maxStreamsPerSession`.
   * Answers the release function (idempotent): call it when the stream ends.
   */
  openStream(key: LimitKey): () => void {
    const open = this.streams(key)
    const max = this.#limits.maxStreamsPerSession
    if (open >= max) {
      this.hit('maxStreamsPerSession', { who: key.label })
      throw new TooLarge(
        `${key.label} has ${open} open streams (watches, monitors, mailboxes), the most ` +
          `limits.maxStreamsPerSession (${max}) allows. Close one first, or raise the limit: ` +
          `createServer({ limits: { maxStreamsPerSession } }) or ` +
          `dataspace serve --limits maxStreamsPerSession=N`,
        { limit: 'maxStreamsPerSession' },
      )
    }
    this.#streams.set(key.id, open + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#streams.get(key.id) ?? 1) - 1
      if (left <= 0) this.#streams.delete(key.id)
      else this.#streams.set(key.id, left)
    }
  }

  /** Takes one call from `key`'s token bucket, or `RateLimited` with how long to wait. */
  takeCall(key: LimitKey): void {
    const rate = this.#limits.maxCallsPerSecond
    const burst = this.#limits.callBurst
    const now = performance.now()
    let bucket = this.#buckets.get(key.id)
    if (bucket === undefined) {
      if (++this.#created % SWEEP_EVERY === 0) this.#sweep(now)
      bucket = { tokens: burst, at: now }
      this.#buckets.set(key.id, bucket)
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * rate) / 1000)
      bucket.at = now
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return
    }
    const retryAfterMs = Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / rate))
    this.hit('maxCallsPerSecond', { who: key.label })
    throw new RateLimited(
      `${key.label} made more than limits.maxCallsPerSecond (${rate}/s, bursts of ${burst}) ` +
        `calls; retry after ${retryAfterMs} ms, or raise the limit: createServer({ limits: ` +
        `{ maxCallsPerSecond, callBurst } }) or dataspace serve --limits maxCallsPerSecond=N`,
      retryAfterMs,
      { limit: 'maxCallsPerSecond' },
    )
  }

  /** Forgets `key`'s rate bucket (its session ended). */
  forget(key: LimitKey): void {
    this.#buckets.delete(key.id)
  }

  // Drops buckets that have refilled: forgetting them changes nothing.
  #sweep(now: number): void {
    const { maxCallsPerSecond: rate, callBurst: burst } = this.#limits
    for (const [id, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) * rate) / 1000 >= burst) this.#buckets.delete(id)
    }
  }
}
