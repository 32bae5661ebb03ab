/**
 * The baseline of bench/cluster-nodes.ts: the cluster's write done by PostgreSQL alone, with
 * no turn and no engine. Each connection loops ONE simple query (one round trip) per write:
 *
 *   BEGIN;
 *   WITH r AS (UPDATE counter SET rev = rev + 1 RETURNING rev) INSERT INTO changes … FROM r;
 *   NOTIFY <channel>;
 *   COMMIT
 *
 * The same write a cluster commit is (a revision, a ~150 B row of the feed, the doorbell), one
 * transaction per write with the NOTIFY inside it. Nothing is read back: no catch-up of the
 * other connections' writes, so the cost does not grow with the connection count. What is left
 * is what the cluster's turn amortises: the counter row's lock and the notify-queue lock, held
 * to each write's commit. Tables: bench/turn-loop.ts's `createTurnTables`.
 */
import { JOB_DATA, loopRate, TURN_CHANNEL } from './turn-loop.js'

/** `JOB_DATA` as an SQL literal: the query is a simple one (no parameters, several statements). */
const AFTER = `'${JSON.stringify({ kind: 'job', data: JOB_DATA }).replaceAll("'", "''")}'::jsonb`

export interface WritesLoad {
  readonly url: string
  /** A schema made by `createTurnTables`. */
  readonly schema: string
  /** Concurrent connections, each writing one write after another. */
  readonly connections: number
  /** Timed seconds, after `warmupSeconds` whose writes are not counted. */
  readonly seconds: number
  readonly warmupSeconds?: number
}

/** Commits/s of `connections` connections each looping the one-query write. */
export function oneQueryWritesRate(load: WritesLoad): Promise<number> {
  const { schema } = load
  return loopRate(load, (client, connection) => async (write) => {
    const id = `${connection}-${write}`
    try {
      await client.query(
        `BEGIN;
         WITH r AS (UPDATE ${schema}.counter SET rev = rev + 1 RETURNING rev)
         INSERT INTO ${schema}.changes (revision, seq, kind, id, after)
         SELECT rev, 0, 'job', '${id}', ${AFTER} FROM r;
         NOTIFY ${TURN_CHANNEL}, '${id}';
         COMMIT`,
      )
    } catch (error) {
      // A failed statement leaves the transaction open and aborted: close it, then fail.
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    }
    return 1
  })
}
