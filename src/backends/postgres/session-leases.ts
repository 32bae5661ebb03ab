import type { StoredSession } from '../../engine/ports/backend.js'
import type { Connections } from './connections.js'
import type { SchemaTables } from './migrations.js'
import { sessionFromRow } from './rows.js'
import type { SessionRow } from './rows.js'
import { TURN_CLASS } from './turn-lock.js'

/**
 * How long a renewal waits for the write turn in progress (and the turns queued before it) and
 * for its statement. A renewal that gives up is retried by the engine on its next period.
 */
const RENEW_TIMEOUT = '5s'

/**
 * A cluster node's session leases (docs/cluster.md, "Sessions in the store"): `expires_at` on
 * the database clock is the lease. The node renews all of its sessions in one statement; any
 * node reads the sessions whose lease ran out and reaps them in its write turn.
 *
 * Why a renewal takes the turn's lock SHARED: a reaper checks in its `write_batch` (under the
 * turn, exclusive) that the sessions it ends have no live lease. A renewal that began before a
 * lease ran out could otherwise commit after the reaper read the session as expired; with the
 * shared lock, renewals and turns exclude each other, and a lease that ran out is never renewed
 * (`expires_at > now()`), so "expired" never turns back.
 */
export class SessionLeases {
  readonly #t: SchemaTables
  readonly #schema: string
  readonly #db: () => Connections

  constructor(tables: SchemaTables, schemaName: string, db: () => Connections) {
    this.#t = tables
    this.#schema = schemaName
    this.#db = db
  }

  /** Renews every live lease `node` holds; answers their ids. */
  async renew(node: string): Promise<string[]> {
    return this.#db().transaction('BEGIN', async (client) => {
      await client.query(
        `SET LOCAL lock_timeout = '${RENEW_TIMEOUT}'; SET LOCAL statement_timeout = '${RENEW_TIMEOUT}'`,
      )
      await client.query('SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', [
        TURN_CLASS,
        this.#schema,
      ])
      const { rows } = await client.query<{ id: string }>(
        `UPDATE ${this.#t.sessions} SET expires_at = now() + ttl * interval '1 millisecond'
         WHERE node = $1 AND expires_at > now() RETURNING id`,
        [node],
      )
      return rows.map((row) => row.id)
    })
  }

  /**
   * Claims at most `limit` sessions whose lease ran out and that no other node claimed within
   * `claimMs`, the longest gone first. One statement: the row lock decides between nodes
   * claiming at once, and SKIP LOCKED lets each take other rows instead of waiting.
   */
  async claimExpired(limit: number, claimMs: number): Promise<StoredSession[]> {
    const t = this.#t
    const { rows } = await this.#db().query<SessionRow>(
      `UPDATE ${t.sessions} SET reap_at = now() + $2 * interval '1 millisecond'
       WHERE id IN (SELECT id FROM ${t.sessions}
         WHERE expires_at <= now() AND (reap_at IS NULL OR reap_at <= now())
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING id, resume_token_hash, pid, name, ttl, children, last_child, principal`,
      [limit, claimMs],
    )
    return rows.map(sessionFromRow)
  }
}
