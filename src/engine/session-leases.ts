import type { ClusterSeam, SessionMatch, StoredSession, TakenSession } from './ports/backend.js'
import type { BackendLog } from './storage/runtime.js'

/** A reaper looks for sessions whose lease ran out this often (and at most this many at once). */
export const REAP_EVERY_MS = 1_000
const REAP_BATCH = 100
/** A reaper's claim on a session lasts this long: then another node may reap it. */
const REAP_CLAIM_MS = 10_000
/** Renewals run at a third of the shortest lease, at least this far apart… */
const RENEW_MIN_MS = 30
/** …and at most this far apart, so a session opened since with a short lease waits little. */
const RENEW_MAX_MS = 1_000
/** While renewals or reaps keep failing, one warning per this many ms. */
const FAILURE_LOG_EVERY_MS = 30_000

/** A third of the lease `ttl`, within the bounds above. */
function renewalDelay(ttl: number): number {
  return Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, ttl / 3))
}

/** What the leases need of the engine. */
export interface LeaseHost {
  /** This node's name: its sessions' rows name it. */
  readonly node: string
  /** The stored sessions of this node, as last put (the runtime's). */
  readonly sessions: ReadonlyMap<string, StoredSession>
  /** Whether a session's first put is durable: only then can its absence mean it was lost. */
  isWritten(id: string): boolean
  /** Retracts what a session whose lease ran out owns, in one commit that ends it. */
  reap(session: StoredSession): Promise<void>
  /** Serves a session taken over from another node: its processes here, its lease renewed. */
  adopt(session: StoredSession): void
  /** Resolves once this node has applied `revision` (its feed reader woken). */
  caughtUp(revision: number): Promise<void>
  /**
   * Ends this node's processes of a session the store no longer gives this node (it was reaped,
   * or its lease ran out: the reaper retracts what it owns), with no commit of their own.
   */
  lose(session: StoredSession): void
}

/**
 * A cluster node's sessions in the store (docs/cluster.md, "Sessions in the store").
 *
 * - **Renewal.** Every third of the shortest lease of its sessions (between 30 ms and 1 s),
 *   one statement renews the lease of every session this node serves and holds
 *   (`ClusterSeam.renewSessions`). A session
 *   whose first put was durable before the renewal was sent, and that the renewal did not
 *   renew, was lost: its lease ran out (this node could not renew it in time) or a reaper took
 *   it. Its processes here end (`lease-expired`), so its client is told, and nothing more is
 *   written for it.
 * - **Reaping.** Every second, each node claims sessions whose lease ran out, any node's (a
 *   claim keeps the other nodes off them for 10 s), and retracts what each owned in one
 *   `owner-exit` commit that deletes it (in its next turn: the store refuses that commit if
 *   the lease is live again).
 *
 * - **Takeover and release**: a session another node held, resumed here (`takeOver`); one whose
 *   client left this node (`release`).
 *
 * A failure is logged (throttled) and retried on the next period; it never stops the node.
 */
export class SessionLeases {
  readonly #cluster: ClusterSeam
  readonly #host: LeaseHost
  readonly #log: BackendLog
  #renewTimer: NodeJS.Timeout | undefined
  /** When the next renewal is due (epoch ms). */
  #renewAt = Infinity
  #reapTimer: NodeJS.Timeout | undefined
  #renewing: Promise<void> | undefined
  #reaping: Promise<void> | undefined
  /** Sessions being reaped by this node now (a slow reap is not started twice). */
  readonly #inReap = new Set<string>()
  #stopped = false
  #lastFailureLog = 0
  #failures = 0

  constructor(cluster: ClusterSeam, host: LeaseHost, log: BackendLog) {
    this.#cluster = cluster
    this.#host = host
    this.#log = log
  }

  start(): void {
    if (this.#stopped) return
    this.#scheduleRenewal()
    this.#reapTimer = setInterval(() => {
      this.#reaping ??= this.#reap().finally(() => (this.#reaping = undefined))
    }, REAP_EVERY_MS)
    this.#reapTimer.unref()
  }

  /** Stops both loops and waits for a renewal or a reaper read under way. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#renewTimer)
    clearInterval(this.#reapTimer)
    await Promise.all([this.#renewing, this.#reaping])
  }

  /**
   * Takes over a session another node held (its client resumed it here): moves its row to
   * this node, waits until this node has applied everything stored then (the client's own
   * writes on the other node included), and serves its processes here. `undefined` when the
   * store has no live session `id` matching `match`.
   */
  async takeOver(id: string, match: SessionMatch): Promise<TakenSession | undefined> {
    const taken = await this.#cluster.takeOverSession(id, this.#host.node, match)
    if (taken === undefined) return undefined
    // Served (and renewed) here from the moment the store names this node, even if catching
    // up fails below: the client, told to retry, resumes it here.
    this.#host.adopt(taken.session)
    this.sessionPut(taken.session)
    await this.#host.caughtUp(taken.revision)
    return taken
  }

  /**
   * A session whose client went away from this node (its lease here ran out): its lease in the
   * store runs out now, if this node still holds it, and its processes here end with no commit
   * of their own: a reaper retracts what it owned (within about a second), while a node that
   * took it over meanwhile keeps serving it, untouched. When the store cannot be reached, its
   * lease runs out there by itself (it is no longer renewed).
   */
  async release(id: string): Promise<void> {
    const session = this.#host.sessions.get(id)
    if (session === undefined) return
    try {
      await this.#cluster.expireSession(id, this.#host.node)
    } catch (error) {
      this.#failed('running out a released session', error)
    }
    const now = this.#host.sessions.get(id)
    if (now !== undefined) this.#host.lose(now)
  }

  /** Renews now (a session was opened with a lease shorter than the next renewal allows for). */
  sessionPut(session: StoredSession): void {
    if (this.#stopped || this.#renewing !== undefined) return
    // Only ever earlier: puts arriving faster than the renewal period must not postpone it.
    if (Date.now() + renewalDelay(session.ttl) < this.#renewAt) this.#scheduleRenewal()
  }

  #scheduleRenewal(): void {
    clearTimeout(this.#renewTimer)
    this.#renewAt = Infinity
    if (this.#stopped) return
    let shortest = Infinity
    for (const session of this.#host.sessions.values()) shortest = Math.min(shortest, session.ttl)
    const delay = renewalDelay(shortest)
    this.#renewAt = Date.now() + delay
    this.#renewTimer = setTimeout(() => {
      this.#renewAt = Infinity
      this.#renewing = this.#renew().finally(() => {
        this.#renewing = undefined
        this.#scheduleRenewal()
      })
    }, delay)
    this.#renewTimer.unref()
  }

  async #renew(): Promise<void> {
    const host = this.#host
    if (host.sessions.size === 0) return
    // Judged: the sessions stored before the statement is sent. One written meanwhile may be
    // missing from the answer without being lost.
    const judged = [...host.sessions.keys()].filter((id) => host.isWritten(id))
    let renewed: Set<string>
    try {
      renewed = new Set(await this.#cluster.renewSessions(host.node, judged))
    } catch (error) {
      this.#failed('renewing session leases', error)
      return
    }
    this.#recovered()
    for (const id of judged) {
      if (renewed.has(id)) continue
      const session = host.sessions.get(id)
      // Ended here meanwhile (its delete is queued): not lost.
      if (session === undefined) continue
      this.#log.warn('session lost: its lease ran out in the store or a reaper took it', {
        session: id,
        pid: session.pid,
      })
      host.lose(session)
    }
  }

  async #reap(): Promise<void> {
    if (this.#stopped) return
    let expired: StoredSession[]
    try {
      expired = await this.#cluster.claimExpiredSessions(REAP_BATCH, REAP_CLAIM_MS)
    } catch (error) {
      this.#failed('reading expired sessions', error)
      return
    }
    this.#recovered()
    for (const session of expired) {
      if (this.#inReap.has(session.id) || this.#stopped) continue
      this.#inReap.add(session.id)
      this.#host
        .reap(session)
        .catch((error: unknown) => this.#failed('reaping a session', error))
        .finally(() => this.#inReap.delete(session.id))
    }
  }

  #failed(what: string, error: unknown): void {
    this.#failures++
    const now = Date.now()
    if (now - this.#lastFailureLog < FAILURE_LOG_EVERY_MS) return
    this.#lastFailureLog = now
    this.#log.warn(`${what} failed; retrying on the next period`, {
      error: error instanceof Error ? error.message : String(error),
      failures: this.#failures,
    })
    this.#failures = 0
  }

  #recovered(): void {
    this.#lastFailureLog = 0
    this.#failures = 0
  }
}
