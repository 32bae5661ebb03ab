import { createHash } from 'node:crypto'
import type { Connections } from './connections.js'

const PREFIX = 'ds_feed_'
/** PostgreSQL's identifier limit (NAMEDATALEN - 1): `pg_notify` refuses a longer channel. */
const MAX_CHANNEL = 63
const HASH_CHARS = 10

/**
 * The NOTIFY channel of a schema's feed: `ds_feed_<schema>`. Channels are per database, not per
 * schema, so the schema is in the name. A schema name is at most 63 bytes (ASCII), the channel
 * too: when `ds_feed_<schema>` would be longer, the schema is cut to its first 44 characters and
 * followed by `_` and 10 hex digits of its sha256 (`ds_feed_<44>_<hash>`, 63 bytes), so two
 * long names with a common start still ring apart.
 */
export function feedChannel(schema: string): string {
  const plain = `${PREFIX}${schema}`
  if (plain.length <= MAX_CHANNEL) return plain
  const hash = createHash('sha256').update(schema).digest('hex').slice(0, HASH_CHARS)
  return `${PREFIX}${schema.slice(0, MAX_CHANNEL - PREFIX.length - HASH_CHARS - 1)}_${hash}`
}

/**
 * The writer's doorbell (docs/backends.md, "Followers"): after a write that stored commits,
 * `SELECT pg_notify(channel, '<last revision>')` in a statement of its own on a pooled
 * connection — never inside the write's transaction, and never awaited by the write. It is a
 * hint: followers also poll the feed, so a lost ring only delays them. At most one NOTIFY is in
 * flight; rings meanwhile collapse into one for the highest revision, so a burst of writes costs
 * the pool one connection, not one per write. A failed NOTIFY is reported through `onError`.
 */
export class Doorbell {
  readonly #channel: string
  readonly #db: () => Connections
  readonly #onError: (error: Error) => void
  #sending: Promise<void> | undefined
  /** The highest revision rung while a NOTIFY was in flight: sent when it ends. */
  #next: number | undefined
  #closed = false

  constructor(channel: string, db: () => Connections, onError: (error: Error) => void) {
    this.#channel = channel
    this.#db = db
    this.#onError = onError
  }

  /** Announces that commits up to `revision` are stored. Returns at once. */
  ring(revision: number): void {
    if (this.#closed) return
    if (this.#sending !== undefined) {
      this.#next = Math.max(this.#next ?? revision, revision)
      return
    }
    this.#sending = this.#send(revision)
  }

  async #send(first: number): Promise<void> {
    for (let revision = first; ;) {
      try {
        await this.#db().query('SELECT pg_notify($1, $2)', [this.#channel, String(revision)])
      } catch (error) {
        this.#onError(error instanceof Error ? error : new Error(String(error)))
      }
      const next = this.#next
      this.#next = undefined
      // Cleared in the same step as the last look at `#next`: a ring arriving after it starts
      // a new send instead of being left in `#next` with nobody to send it.
      if (next === undefined) {
        this.#sending = undefined
        return
      }
      revision = next
    }
  }

  /** Rings no more, and waits for the NOTIFY in flight (before the pool ends). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#sending
  }
}
