import type { Dataspace } from '../dataspace.js'
import { RateLimited, TooLarge } from '../errors/index.js'
import type { Principal, TokenTable } from './auth.js'
import type { LogThrottle } from './log-throttle.js'
import type { ServerLimits } from './options.js'
import type { Session } from './session-table.js'
import { TokenBuckets } from './token-buckets.js'

/** The limits whose hits are counted (`dataspace_limit_hits_total{limit}`) and logged. */
export const LIMIT_NAMES = [
  'maxRecordsPerSession',
  'maxStreamsPerSession',
  'maxCallsPerSecond',
  'maxBodyBytes',
  'maxFrameBytes',
  'wsMaxBufferBytes',
  'sseBufferBytes',
  'maxSessions',
  'maxSessionsPerToken',
  'maxSessionsPerAddress',
  'maxConnections',
  'maxConnectionsPerAddress',
  'wsHelloTimeoutMs',
  'requestTimeoutMs',
  'maxAuthFailuresPerSecond',
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

/**
 * The per-session limits the server enforces on both transports: records owned, open streams,
 * call rate, sessions per caller and failed authentications per address. Every hit is counted
 * (`onHit`, the limit-hits metric) and logged, at most once a second per limit with a count of
 * the hits in between.
 */
export class LimitGuard {
  readonly #ds: Dataspace
  readonly #limits: ServerLimits
  readonly #log: LogThrottle
  readonly #onHit: (limit: LimitName) => void
  readonly #streams = new Map<string, number>()
  readonly #sessions = new Map<string, number>()
  readonly #calls: TokenBuckets
  readonly #authFailures: TokenBuckets

  constructor(
    ds: Dataspace,
    limits: ServerLimits,
    log: LogThrottle,
    onHit: (limit: LimitName) => void,
  ) {
    this.#ds = ds
    this.#limits = limits
    this.#log = log
    this.#onHit = onHit
    this.#calls = new TokenBuckets(limits.maxCallsPerSecond, limits.callBurst)
    this.#authFailures = new TokenBuckets(limits.maxAuthFailuresPerSecond, limits.authFailureBurst)
  }

  /** Counts and logs one hit of `limit`; `fields` go into the log line. */
  hit(limit: LimitName, fields: Record<string, unknown> = {}): void {
    this.#onHit(limit)
    this.#log.warn(`limit:${limit}`, { limit, value: this.#limits[limit], ...fields }, 'limit hit')
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
    const retryAfterMs = this.#calls.take(key.id)
    if (retryAfterMs === undefined) return
    const { maxCallsPerSecond: rate, callBurst: burst } = this.#limits
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
    this.#calls.forget(key.id)
  }

  /**
   * The principal of an Authorization header, or `Unauthorized` (counted against `address`), or
   * `RateLimited` before the token is even looked at while `address` is over
   * `maxAuthFailuresPerSecond`. Both transports authenticate through here.
   */
  authenticate(
    auth: TokenTable,
    header: string | undefined,
    address: string | undefined,
  ): Principal {
    this.checkAuthAllowed(address)
    try {
      return auth.authenticate(header)
    } catch (error) {
      this.authFailed(address)
      throw error
    }
  }

  /**
   * `RateLimited` while `address` has used up its failed authentications
   * (`maxAuthFailuresPerSecond`): checked before a token is, so a flood costs no hashing and no
   * log line per request.
   */
  checkAuthAllowed(address: string | undefined): void {
    const retryAfterMs = this.#authFailures.wait(addressId(address))
    if (retryAfterMs !== undefined) this.#authLimited(address, retryAfterMs)
  }

  /** Counts one failed authentication from `address`. */
  authFailed(address: string | undefined): void {
    this.#authFailures.take(addressId(address))
  }

  #authLimited(address: string | undefined, retryAfterMs: number): never {
    const { maxAuthFailuresPerSecond: rate, authFailureBurst: burst } = this.#limits
    this.hit('maxAuthFailuresPerSecond', { who: `client ${address ?? 'unknown'}` })
    throw new RateLimited(
      `too many failed authentications from client ${address ?? 'unknown'}: over ` +
        `limits.maxAuthFailuresPerSecond (${rate}/s, bursts of ${burst}); retry after ` +
        `${retryAfterMs} ms with a valid token`,
      retryAfterMs,
      { limit: 'maxAuthFailuresPerSecond' },
    )
  }

  /**
   * Counts one more open session against `key` (its token, or its address without auth) and
   * the server (`open`: sessions open now), or `TooLarge` at `maxSessions`,
   * `maxSessionsPerToken` or `maxSessionsPerAddress`. Answers the release function
   * (idempotent): call it when the session ends.
   */
  openSession(key: LimitKey, open: number): () => void {
    const mine = this.#sessions.get(key.id) ?? 0
    const perKey = key.id.startsWith('t:') ? 'maxSessionsPerToken' : 'maxSessionsPerAddress'
    const over =
      open >= this.#limits.maxSessions
        ? 'maxSessions'
        : mine >= this.#limits[perKey]
          ? perKey
          : undefined
    if (over !== undefined) {
      const max = this.#limits[over]
      this.hit(over, { who: key.label })
      const whose = over === 'maxSessions' ? 'the server' : key.label
      throw new TooLarge(
        `${whose} has ${over === 'maxSessions' ? open : mine} open sessions, the most ` +
          `limits.${over} (${max}) allows. End a session first (DELETE /v1/sessions/:id, or ` +
          `close the client), wait for one to expire, or raise the limit: createServer({ ` +
          `limits: { ${over} } }) or dataspace serve --limits ${over}=N`,
        { limit: over },
      )
    }
    this.#sessions.set(key.id, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#sessions.get(key.id) ?? 1) - 1
      if (left <= 0) this.#sessions.delete(key.id)
      else this.#sessions.set(key.id, left)
    }
  }
}

function addressId(address: string | undefined): string {
  return address ?? 'unknown'
}
