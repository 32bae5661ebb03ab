import pg from 'pg'
import type { PoolConfig } from 'pg'
import { Unavailable } from '../../errors/index.js'
import type { FollowerSeam, LoadedState, StoredKind } from '../../engine/ports/backend.js'
import { dedicatedClientConfig, endSoon } from './connections.js'
import type { Connections } from './connections.js'
import type { SchemaTables } from './migrations.js'
import { kindFromRow } from './rows.js'
import type { KindRow } from './rows.js'

/** Reconnect delays of a dropped LISTEN connection: from 100 ms, doubling, at most 5 s. */
const FIRST_DELAY_MS = 100
const MAX_DELAY_MS = 5_000

interface FollowerOptions {
  readonly url: string
  readonly pool?: Omit<PoolConfig, 'connectionString'>
  readonly onError?: (error: Error) => void
}

/**
 * A follower's view of the writer (docs/backends.md, "Followers"): the doorbell it listens to
 * (doorbell.ts rings it) and the kinds as declared now. Each `listen` holds a connection of
 * its own (LISTEN does not survive a pooled connection going back to the pool); `close` stops
 * them all.
 */
export class PostgresFollower implements FollowerSeam {
  readonly #options: FollowerOptions
  readonly #schema: string
  readonly #channel: string
  readonly #t: SchemaTables
  readonly #db: () => Connections
  readonly #load: () => Promise<LoadedState>
  readonly #listeners = new Set<Listener>()
  #closed = false

  constructor(
    options: FollowerOptions,
    schema: string,
    channel: string,
    tables: SchemaTables,
    db: () => Connections,
    load: () => Promise<LoadedState>,
  ) {
    this.#load = load
    this.#options = options
    this.#schema = schema
    this.#channel = channel
    this.#t = tables
    this.#db = db
  }

  async listen(ring: () => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new Unavailable('postgres backend: listen after close')
    const listener = new Listener(
      dedicatedClientConfig(
        this.#options,
        // The schema before the pid, so that a long name keeps it: an operator (or a test)
        // finds a schema's followers in pg_stat_activity.
        `dataspace follower schema=${this.#schema} pid=${process.pid}`,
      ),
      this.#channel,
      ring,
      (error) => this.#options.onError?.(error),
    )
    await listener.start()
    if (this.#closed) {
      // The backend closed while this listen connected.
      await listener.stop()
      throw new Unavailable('postgres backend: listen after close')
    }
    this.#listeners.add(listener)
    return async () => {
      this.#listeners.delete(listener)
      await listener.stop()
    }
  }

  async kinds(): Promise<StoredKind[]> {
    const { rows } = await this.#db().query<KindRow>(
      `SELECT kind, fields, indexes, resident FROM ${this.#t.kinds} ORDER BY kind`,
      [],
    )
    return rows.map(kindFromRow)
  }

  snapshot(): Promise<LoadedState> {
    return this.#load()
  }

  /** Stops every listener for good. */
  async close(): Promise<void> {
    this.#closed = true
    const listeners = [...this.#listeners]
    this.#listeners.clear()
    await Promise.all(listeners.map((listener) => listener.stop()))
  }
}

/**
 * One `LISTEN` on a dedicated connection. When that connection drops, it reconnects with
 * backoff and rings once reconnected (commits may have gone by unheard meanwhile); failures
 * go to `onError`, never to the caller. Only the first connect rejects (`start`).
 */
class Listener {
  readonly #config: pg.ClientConfig
  readonly #channel: string
  readonly #ring: () => void
  readonly #onError: (error: Error) => void
  /** The connection that is listening now, if any. */
  #client: pg.Client | undefined
  /** The connection being opened, if any: `stop` ends it rather than wait out its connect. */
  #opening: pg.Client | undefined
  #timer: NodeJS.Timeout | undefined
  /** A reconnect under way: `stop` waits for it, so no connection outlives the listener. */
  #attempt: Promise<void> | undefined
  #delay = FIRST_DELAY_MS
  #stopped = false

  constructor(
    config: pg.ClientConfig,
    channel: string,
    ring: () => void,
    onError: (error: Error) => void,
  ) {
    this.#config = config
    this.#channel = channel
    this.#ring = ring
    this.#onError = onError
  }

  async start(): Promise<void> {
    await this.#connect()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await endSoon(this.#opening)
    // A reconnect whose connection endSoon just cut may never settle (pg's connect() does not
    // always hear of a socket destroyed under it): it is not waited for beyond a second. Being
    // stopped, it ends its client should it ever connect.
    const attempt = this.#attempt
    if (attempt !== undefined) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([attempt, new Promise((resolve) => (timer = setTimeout(resolve, 1_000)))])
      clearTimeout(timer)
    }
    const client = this.#client
    this.#client = undefined
    await endSoon(client)
  }

  /** Connects and listens; the connection is ours only once LISTEN succeeded. */
  async #connect(): Promise<boolean> {
    const client = new pg.Client(this.#config)
    client.on('notification', (message) => {
      if (client === this.#client && message.channel === this.#channel) this.#call()
    })
    client.on('error', (error) => this.#lost(client, error))
    client.on('end', () => this.#lost(client, new Error('the connection closed')))
    this.#opening = client
    try {
      await client.connect()
      // The channel is [a-z0-9_] (doorbell.ts): quoting keeps it as it is.
      await client.query(`LISTEN "${this.#channel}"`)
    } catch (error) {
      await client.end().catch(() => undefined)
      throw error
    } finally {
      this.#opening = undefined
    }
    if (this.#stopped) {
      await client.end().catch(() => undefined)
      return false
    }
    this.#client = client
    return true
  }

  #lost(client: pg.Client, error: Error): void {
    // Events of a connection that is not (or no longer) the listening one say nothing new.
    if (client !== this.#client || this.#stopped) return
    this.#client = undefined
    void client.end().catch(() => undefined)
    this.#report(error)
    this.#schedule()
  }

  #schedule(): void {
    if (this.#stopped) return
    const delay = this.#delay
    this.#delay = Math.min(delay * 2, MAX_DELAY_MS)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#attempt = this.#reconnect().finally(() => {
        this.#attempt = undefined
      })
    }, delay)
    // Waiting to reconnect does not by itself keep the process alive.
    this.#timer.unref()
  }

  async #reconnect(): Promise<void> {
    try {
      if (!(await this.#connect())) return
    } catch (error) {
      if (this.#stopped) return
      this.#report(error)
      this.#schedule()
      return
    }
    this.#delay = FIRST_DELAY_MS
    this.#call()
  }

  #call(): void {
    try {
      this.#ring()
    } catch (error) {
      // A throwing ring must not break the connection's event handling.
      this.#onError(error instanceof Error ? error : new Error(String(error)))
    }
  }

  #report(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    this.#onError(
      new Error(
        `postgres follower: the LISTEN connection on "${this.#channel}" failed (${message}); ` +
          `reconnecting in ${this.#delay} ms`,
        { cause: error },
      ),
    )
  }
}
