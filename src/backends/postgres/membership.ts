import type { Membership, NodeInfo, NodeRegistration } from '../../engine/ports/backend.js'
import type { Connections } from './connections.js'
import type { SchemaTables } from './migrations.js'

/** A row is live while its last heartbeat is within this many of its own intervals. */
export const LIVE_BEATS = 3
/** A row that has not beaten for this many of its intervals is deleted by any node's heartbeat. */
export const PRUNE_BEATS = 10
/** At most this many dead rows are deleted per heartbeat, so a heartbeat stays cheap. */
const PRUNE_BATCH = 100
/** `members` reads at most this many rows (dead ones are pruned, so this is never reached). */
const MAX_MEMBERS = 1000

interface NodeRow {
  id: string
  address: string
  host: string
  pid: number
  heartbeat_ms: number
  started: string
  heartbeat: string
  live: boolean
}

/**
 * The `nodes` table (docs/cluster.md, "Membership"): one row per server on the schema. Every
 * time is `now()` on the database, never a node's clock, and liveness is judged there too, so
 * nodes whose clocks drift still agree. Each row carries its node's heartbeat interval, so
 * nodes configured differently are each judged by their own.
 */
export class PostgresMembership implements Membership {
  readonly #t: SchemaTables
  readonly #db: () => Connections

  constructor(tables: SchemaTables, db: () => Connections) {
    this.#t = tables
    this.#db = db
  }

  async join(node: NodeRegistration): Promise<void> {
    await this.#db().query(
      `INSERT INTO ${this.#t.nodes} (id, address, host, pid, heartbeat_ms)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET address = excluded.address, host = excluded.host,
         pid = excluded.pid, heartbeat_ms = excluded.heartbeat_ms,
         started_at = now(), heartbeat_at = now()`,
      [node.id, node.address, node.host, node.pid, node.heartbeatMs],
    )
  }

  async heartbeat(node: NodeRegistration): Promise<void> {
    const t = this.#t
    // One statement: renew our row, and prune a bounded number of long-dead ones. SKIP LOCKED:
    // two nodes pruning at once never wait on (or deadlock over) the same rows. The interval is
    // scaled as an interval, not an int: one node's long interval times 10 would overflow int
    // and fail every node's heartbeat (and the listing).
    const { rowCount } = await this.#db().query(
      `WITH pruned AS (
         DELETE FROM ${t.nodes} WHERE id IN (
           SELECT id FROM ${t.nodes}
           WHERE id <> $1 AND heartbeat_at < now() - heartbeat_ms * interval '1 millisecond' * $2::int
           ORDER BY heartbeat_at LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED))
       UPDATE ${t.nodes} SET heartbeat_at = now() WHERE id = $1`,
      [node.id, PRUNE_BEATS],
    )
    // Our row is gone: we were cut off long enough for another node to prune it.
    if (rowCount === 0) await this.join(node)
  }

  async members(): Promise<NodeInfo[]> {
    const { rows } = await this.#db().query<NodeRow>(
      `SELECT id, address, host, pid, heartbeat_ms,
         (extract(epoch FROM started_at) * 1000)::float8 AS started,
         (extract(epoch FROM heartbeat_at) * 1000)::float8 AS heartbeat,
         heartbeat_at > now() - heartbeat_ms * interval '1 millisecond' * $1::int AS live
       FROM ${this.#t.nodes} ORDER BY started_at, id LIMIT ${MAX_MEMBERS}`,
      [LIVE_BEATS],
    )
    return rows.map((row) => ({
      id: row.id,
      address: row.address,
      host: row.host,
      pid: row.pid,
      heartbeatMs: row.heartbeat_ms,
      startedAt: Math.round(Number(row.started)),
      heartbeatAt: Math.round(Number(row.heartbeat)),
      live: row.live,
    }))
  }

  async leave(id: string): Promise<void> {
    await this.#db().query(`DELETE FROM ${this.#t.nodes} WHERE id = $1`, [id])
  }
}
