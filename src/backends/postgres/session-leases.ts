import pg from 'pg'
import type { SessionMatch, StoredSession, TakenSession } from '../../engine/ports/backend.js'
import type { Connections } from './connections.js'
import type { SchemaTables } from './migrations.js'
import { answerFromRow, sessionFromRow } from './rows.js'
import type { AnswerRow, SessionRow } from './rows.js'
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

  /**
   * Renews every live lease `node` holds; answers their ids. One simple query (its statements
   * are one implicit transaction, one round trip), so the pool's client-side `query_timeout`
   * bounds it too: a database host that vanished fails it instead of holding it for TCP's
   * minutes (the values are literals, escaped: the simple protocol takes no parameters).
   */
  async renew(node: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return []
    const list = ids.map((id) => pg.escapeLiteral(id)).join(',')
    const text =
      `SET LOCAL lock_timeout = '${RENEW_TIMEOUT}'; ` +
      `SET LOCAL statement_timeout = '${RENEW_TIMEOUT}'; ` +
      `SELECT pg_advisory_xact_lock_shared(${TURN_CLASS}, hashtext(${pg.escapeLiteral(this.#schema)})); ` +
      // clock_timestamp(), not now(): now() is when the transaction began, before the wait for
      // the lock, and a lease that ran out during that wait must stay out.
      `UPDATE ${this.#t.sessions} ` +
      `SET expires_at = clock_timestamp() + ttl * interval '1 millisecond' ` +
      `WHERE node = ${pg.escapeLiteral(node)} AND id = ANY(ARRAY[${list}]::text[]) ` +
      `AND expires_at > clock_timestamp() RETURNING id`
    // A multi-statement query answers one result per statement; the UPDATE's is the last.
    const results = (await this.#db().single(text, [])) as unknown as pg.QueryResult<{
      id: string
    }>[]
    return (results.at(-1)?.rows ?? []).map((row) => row.id)
  }

  /**
   * Moves a live session to `node`, if the resume token's hash (and the principal, when given)
   * match; with its answers and the stored revision, in one simple query (one transaction).
   */
  async takeOver(id: string, node: string, match: SessionMatch): Promise<TakenSession | undefined> {
    const t = this.#t
    const lit = pg.escapeLiteral
    const principal =
      match.principal === undefined ? '' : ` AND principal = ${lit(match.principal)}`
    // Under the turn's lock, shared, as renewals: a node's batch fenced on this session
    // commits before the move (its answers are then read here) or is refused after it.
    const text =
      `SET LOCAL lock_timeout = '${RENEW_TIMEOUT}'; ` +
      `SET LOCAL statement_timeout = '${RENEW_TIMEOUT}'; ` +
      `SELECT pg_advisory_xact_lock_shared(${TURN_CLASS}, hashtext(${lit(this.#schema)})); ` +
      `UPDATE ${t.sessions} SET node = ${lit(node)}, reap_at = NULL, ` +
      `expires_at = clock_timestamp() + ttl * interval '1 millisecond' ` +
      `WHERE id = ${lit(id)} AND expires_at > clock_timestamp() ` +
      `AND resume_token_hash = ${lit(match.resumeTokenHash)}${principal} ` +
      `RETURNING id, resume_token_hash, pid, name, ttl, children, last_child, principal; ` +
      `SELECT session, call, revision, value FROM ${t.answers} WHERE session = ${lit(id)} ` +
      `ORDER BY revision, call; ` +
      `SELECT revision FROM ${t.revision}`
    const [, , , moved, answers, head] = (await this.#db().single(text, [])) as unknown as [
      pg.QueryResult,
      pg.QueryResult,
      pg.QueryResult,
      pg.QueryResult<SessionRow>,
      pg.QueryResult<AnswerRow>,
      pg.QueryResult<{ revision: string }>,
    ]
    const row = moved.rows[0]
    if (row === undefined) return undefined
    return {
      session: sessionFromRow(row),
      answers: answers.rows.map(answerFromRow),
      revision: Number(head.rows[0]?.revision ?? 0),
    }
  }

  /** Runs the lease of `id` out now, if `node` holds it. */
  async expire(id: string, node: string): Promise<void> {
    await this.#db().single(
      `UPDATE ${this.#t.sessions} SET expires_at = clock_timestamp()
       WHERE id = $1 AND node = $2 AND expires_at > clock_timestamp()`,
      [id, node],
    )
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
         WHERE expires_at <= clock_timestamp() AND (reap_at IS NULL OR reap_at <= now())
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING id, resume_token_hash, pid, name, ttl, children, last_child, principal`,
      [limit, claimMs],
    )
    return rows.map(sessionFromRow)
  }
}
