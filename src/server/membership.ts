import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Membership, NodeInfo, NodeRegistration } from '../backends/index.js'
import { Unavailable } from '../errors/index.js'

/** A member as `/readyz` and `GET /v1/nodes` answer it. */
export interface NodeView extends NodeInfo {
  /** True for the server that answered. */
  readonly self: boolean
}

/** The `cluster` field of `/readyz`. */
export interface ClusterView {
  /** Live members, this server included; absent when they could not be read. */
  readonly live?: number
  /** Every member; left out when `withMembers` is false (auth on: `/readyz` takes no token). */
  readonly members?: readonly NodeView[]
  /** Why the members could not be read (the database did not answer in time). */
  readonly error?: string
}

// Joining, and a members read (a probe, a scrape, GET /v1/nodes), wait at most this long for
// the database.
const READ_TIMEOUT_MS = 2000
// Leaving at shutdown waits at most this long: a database that is down must not hold it up.
const LEAVE_TIMEOUT_MS = 2000
// While heartbeats keep failing, one warning per this many ms (with the count since the last).
const FAILURE_LOG_EVERY_MS = 30_000

/**
 * This server as a node of its dataspace's cluster (docs/cluster.md, "Membership"). On a backend
 * with `membership` (PostgreSQL) it registers itself once listening, renews its row every
 * `heartbeatMs` (one statement, never two at once; a failure is logged, throttled, and never
 * stops the server), and removes its row on `close`. On a backend without it (memory, SQLite:
 * one server per store) this server is the only member, reported from its own clock.
 */
export class NodeMembership {
  readonly id: string
  readonly #backend: Membership | undefined
  readonly #logger: Logger
  readonly #heartbeatMs: number
  readonly #startedAt = Date.now()
  #self: NodeRegistration | undefined
  #timer: NodeJS.Timeout | undefined
  #beating: Promise<void> | undefined
  #failures = 0
  #lastFailureLog = 0
  #closed = false
  /** The members read out now: requests while it runs share it (see `members`). */
  #reading: Promise<NodeInfo[]> | undefined

  constructor(id: string, backend: Membership | undefined, heartbeatMs: number, logger: Logger) {
    this.id = id
    this.#backend = backend
    this.#heartbeatMs = heartbeatMs
    this.#logger = logger
  }

  /** Registers this node at `address` and starts its heartbeat. A failure is logged only. */
  async start(address: string): Promise<void> {
    const self: NodeRegistration = {
      id: this.id,
      address,
      host: hostname(),
      pid: process.pid,
      heartbeatMs: this.#heartbeatMs,
    }
    this.#self = self
    const backend = this.#backend
    if (backend === undefined) return
    try {
      await withTimeout(backend.join(self), READ_TIMEOUT_MS, 'joining the cluster')
      this.#logger.info({ node: self.id, address }, 'node joined')
    } catch (error) {
      // The heartbeat registers the node again once the database answers.
      this.#failed(error)
    }
    if (this.#closed) return
    this.#timer = setInterval(() => this.#beat(backend, self), this.#heartbeatMs)
    this.#timer.unref()
  }

  #beat(backend: Membership, self: NodeRegistration): void {
    if (this.#beating !== undefined) return
    this.#beating = backend
      .heartbeat(self)
      .then(
        () => {
          if (this.#failures > 0) {
            this.#logger.info({ node: self.id, failures: this.#failures }, 'node heartbeat back')
          }
          this.#failures = 0
          this.#lastFailureLog = 0
        },
        (error: unknown) => this.#failed(error),
      )
      .finally(() => (this.#beating = undefined))
  }

  #failed(error: unknown): void {
    this.#failures++
    const now = Date.now()
    if (now - this.#lastFailureLog < FAILURE_LOG_EVERY_MS) return
    this.#lastFailureLog = now
    this.#logger.warn(
      {
        node: this.id,
        failures: this.#failures,
        err: error instanceof Error ? error.message : String(error),
      },
      'node heartbeat failed; retrying on the next one',
    )
  }

  /** Every member, this node flagged `self`; `Unavailable` when the database does not answer. */
  async members(): Promise<NodeView[]> {
    const backend = this.#backend
    if (backend === undefined) {
      const self = this.#self
      if (self === undefined) return []
      return [
        { ...self, startedAt: this.#startedAt, heartbeatAt: Date.now(), live: true, self: true },
      ]
    }
    // One read at a time, shared by every request that comes while it runs: /readyz takes no
    // token and a timed-out read keeps running, so a read per request would let probes pile up
    // queries on a slow database. Each request still gets its own timeout.
    this.#reading ??= backend.members().finally(() => (this.#reading = undefined))
    const members = await withTimeout(this.#reading, READ_TIMEOUT_MS, 'reading the members')
    return members.map((member) => ({ ...member, self: member.id === this.id }))
  }

  /** The live members, `/readyz`'s way: never throws. */
  async view(withMembers: boolean): Promise<ClusterView> {
    try {
      const members = await this.members()
      const live = members.filter((member) => member.live).length
      return withMembers ? { live, members } : { live }
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) }
    }
  }

  /** Stops the heartbeat and removes this node's row (bounded: a dead database is not waited for). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    const backend = this.#backend
    if (backend === undefined || this.#self === undefined) return
    try {
      await withTimeout(
        (async () => {
          await this.#beating
          await backend.leave(this.id)
        })(),
        LEAVE_TIMEOUT_MS,
        'leaving the cluster',
      )
      this.#logger.info({ node: this.id }, 'node left')
    } catch (error) {
      this.#logger.warn(
        { node: this.id, err: error instanceof Error ? error.message : String(error) },
        'node could not remove its row; the other nodes prune it once it is stale',
      )
    }
  }
}

/** `work`, or `Unavailable` after `ms` (the work itself is not stopped). */
async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Unavailable(`the database did not answer within ${ms} ms ${what}`)),
      ms,
    )
    timer.unref()
  })
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
