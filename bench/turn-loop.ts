/**
 * The cluster's write turn on PostgreSQL alone, no engine (bench/cluster-turn.ts; its tables
 * also hold bench/one-query-writes.ts's writes). Each connection runs turns in a loop:
 *
 *   BEGIN; lock the counter row; read the feed past what this connection applied;
 *   append the turn's commits to the feed; bump the counter; COMMIT
 *   then, in its own tiny transaction, NOTIFY the other nodes (the doorbell)
 *
 * or with the NOTIFY inside the write transaction (`doorbell: 'inside'`): cluster-turn.ts's
 * baseline. bench/cluster-nodes.ts compares with one-query-writes.ts instead, which does a
 * write in one round trip and reads nothing back.
 */
import pg from 'pg'

/** A commit's data: about 150 B, as the cluster benches write it (`kind: 'job'`). */
export const JOB_DATA = { pool: 'cpu', note: 'x'.repeat(120) } as const
const AFTER = JSON.stringify({ kind: 'job', data: JOB_DATA })
/** The channel the turns ring; `createTurnTables`' caller may LISTEN on it. */
export const TURN_CHANNEL = 'ds_bench_turn'

export type Doorbell = 'after' | 'inside'

/** Creates `schema` with the counter and the feed (dropping an old one of that name). */
export async function createTurnTables(admin: pg.Client, schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.counter (rev bigint NOT NULL); INSERT INTO ${schema}.counter VALUES (0);
    CREATE TABLE ${schema}.changes (revision bigint NOT NULL, seq integer NOT NULL,
      kind text NOT NULL, id text NOT NULL, after jsonb, PRIMARY KEY (revision, seq));`)
}

/** Empties the feed and the counter between runs. */
export async function resetTurnTables(admin: pg.Client, schema: string): Promise<void> {
  await admin.query(`TRUNCATE ${schema}.changes; UPDATE ${schema}.counter SET rev = 0`)
}

export interface TurnLoad {
  readonly url: string
  readonly schema: string
  /** Concurrent connections, each running turns one after another. */
  readonly connections: number
  /** Commits per turn. */
  readonly commits: number
  readonly doorbell: Doorbell
  /** Timed seconds, after `warmupSeconds` whose commits are not counted. */
  readonly seconds: number
  readonly warmupSeconds?: number
}

/** Commits/s of `connections` connections running turns of `commits` commits each. */
export function turnsRate(load: TurnLoad): Promise<number> {
  const { schema, commits, doorbell } = load
  return loopRate(load, (client, node) => {
    let applied = 0
    return async (turn) => {
      // One round trip: BEGIN and the lock (revision order = commit order). The catch-up
      // read takes a parameter, so it needs a round trip of its own (the extended protocol).
      const head = await client.query<{ rev: string }>(
        `BEGIN; SELECT rev FROM ${schema}.counter FOR UPDATE;`,
      )
      const rev = Number((head as unknown as pg.QueryResult<{ rev: string }>[])[1]?.rows[0]?.rev)
      await client.query(
        `SELECT revision, seq, kind, id, after FROM ${schema}.changes
         WHERE revision > $1 ORDER BY revision, seq`,
        [applied],
      )
      const first = rev + 1
      const last = rev + commits
      await client.query(
        `INSERT INTO ${schema}.changes (revision, seq, kind, id, after)
         SELECT r, 0, 'job', $3 || '-' || r, $4::jsonb FROM generate_series($1::bigint, $2::bigint) AS r`,
        [first, last, `${node}-${turn}`, AFTER],
      )
      await client.query(`UPDATE ${schema}.counter SET rev = $1`, [last])
      if (doorbell === 'inside') await client.query(`NOTIFY ${TURN_CHANNEL}, '${last}'`)
      await client.query('COMMIT')
      if (doorbell === 'after') await client.query(`NOTIFY ${TURN_CHANNEL}, '${last}'`)
      applied = last
      return commits
    }
  })
}

/**
 * The load loop both baselines share: `connections` connections of their own, each running
 * rounds (`loop(client, index)` makes one connection's round function, which answers how many
 * commits it made) until the window ends; the commits of rounds that ended inside the window
 * (after the warm-up), per second.
 */
export async function loopRate(
  load: { url: string; connections: number; seconds: number; warmupSeconds?: number },
  loop: (client: pg.Client, index: number) => (round: number) => Promise<number>,
): Promise<number> {
  const clients = await connectClients(load.url, load.connections)
  let committed = 0
  const from = Date.now() + (load.warmupSeconds ?? 0) * 1000
  const deadline = from + load.seconds * 1000
  try {
    await Promise.all(
      clients.map(async (client, index) => {
        const round = loop(client, index)
        for (let n = 0; Date.now() < deadline; n++) {
          const made = await round(n)
          const at = Date.now()
          if (at >= from && at < deadline) committed += made
        }
      }),
    )
  } finally {
    await Promise.all(clients.map((client) => client.end()))
  }
  return committed / load.seconds
}

/** `count` connections of their own (not a pool): each runs one loop of writes. */
export async function connectClients(url: string, count: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
  )
}
