/**
 * The cluster's write turn, measured on PostgreSQL alone, before the engine is built on it
 * (docs/cluster.md, "The write turn"). Each "node" is one connection running turns in a loop:
 *
 *   BEGIN; lock the counter row; read the feed past what this node applied;
 *   append the turn's commits to the feed; bump the counter; COMMIT
 *   then, in its own tiny transaction, NOTIFY the other nodes (the doorbell)
 *
 * with `commits` commits per turn (a node batches the commits of one turn, group commit). The
 * baseline, in the same run, is the same turn with the NOTIFY inside the write transaction: the
 * design that serialises every commit on PostgreSQL's global notify-queue lock. The figure says
 * whether one counter row can carry the cluster's aim (≥ 5k commits/s, ≥ 8× that baseline).
 *
 * @example
 * //   node --import tsx bench/cluster-turn.ts           (about 40 s)
 * //   node --import tsx bench/cluster-turn.ts --quick   (about 8 s)
 * //   DATASPACE_TEST_POSTGRES_URL=postgres://… node --import tsx bench/cluster-turn.ts
 */
import pg from 'pg'
import type { Row } from './lib.js'
import { median } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'

const args = benchArgs()
const sizes = {
  seconds: args.quick ? 1 : 2,
  rounds: args.quick ? 1 : 3,
  nodes: [1, 3],
  commitsPerTurn: [1, 16, 64],
}
const PG_URL = process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SCHEMA = `ds_bench_turn_${process.pid}`
const AFTER = JSON.stringify({ kind: 'job', data: { pool: 'cpu', note: 'x'.repeat(120) } })
const AIM = 5_000

type Doorbell = 'after' | 'inside'

/** Commits/s of `nodes` connections running turns of `commits` commits for `seconds`. */
async function turnsRate(nodes: number, commits: number, doorbell: Doorbell): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: nodes }, async () => {
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      return client
    }),
  )
  let committed = 0
  const deadline = Date.now() + sizes.seconds * 1000
  try {
    await Promise.all(
      clients.map(async (client, node) => {
        let applied = 0
        for (let turn = 0; Date.now() < deadline; turn++) {
          // One round trip: BEGIN and the lock (revision order = commit order). The catch-up
          // read takes a parameter, so it needs a round trip of its own (the extended protocol).
          const head = await client.query<{ rev: string }>(
            `BEGIN; SELECT rev FROM ${SCHEMA}.counter FOR UPDATE;`,
          )
          const rev = Number(
            (head as unknown as pg.QueryResult<{ rev: string }>[])[1]?.rows[0]?.rev,
          )
          await client.query(
            `SELECT revision, seq, kind, id, after FROM ${SCHEMA}.changes
             WHERE revision > $1 ORDER BY revision, seq`,
            [applied],
          )
          const first = rev + 1
          const last = rev + commits
          await client.query(
            `INSERT INTO ${SCHEMA}.changes (revision, seq, kind, id, after)
             SELECT r, 0, 'job', $3 || '-' || r, $4::jsonb FROM generate_series($1::bigint, $2::bigint) AS r`,
            [first, last, `${node}-${turn}`, AFTER],
          )
          await client.query(`UPDATE ${SCHEMA}.counter SET rev = $1`, [last])
          if (doorbell === 'inside') await client.query(`NOTIFY ds_bench_turn, '${last}'`)
          await client.query('COMMIT')
          if (doorbell === 'after') await client.query(`NOTIFY ds_bench_turn, '${last}'`)
          applied = last
          committed += commits
        }
      }),
    )
  } finally {
    await Promise.all(clients.map((client) => client.end()))
  }
  return committed / sizes.seconds
}

async function scenarios(): Promise<Row[]> {
  const admin = new pg.Client({ connectionString: PG_URL })
  try {
    await admin.connect()
  } catch (error) {
    console.log(`\ncluster-turn skipped: ${PG_URL} does not answer (${(error as Error).message})`)
    return []
  }
  const rows: Row[] = []
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA};
      CREATE TABLE ${SCHEMA}.counter (rev bigint NOT NULL); INSERT INTO ${SCHEMA}.counter VALUES (0);
      CREATE TABLE ${SCHEMA}.changes (revision bigint NOT NULL, seq integer NOT NULL,
        kind text NOT NULL, id text NOT NULL, after jsonb, PRIMARY KEY (revision, seq));`)
    // A listener on another connection, as other nodes would be: NOTIFY has a reader.
    await admin.query('LISTEN ds_bench_turn')
    const reset = (): Promise<unknown> =>
      admin.query(`TRUNCATE ${SCHEMA}.changes; UPDATE ${SCHEMA}.counter SET rev = 0`)
    for (const nodes of sizes.nodes) {
      // Interleaved rounds: every design sees the same machine, round by round.
      const naive: number[] = []
      const measured = new Map<string, number[]>()
      for (let round = 0; round < sizes.rounds; round++) {
        naive.push(await turnsRate(nodes, 1, 'inside'))
        await reset()
        for (const commits of sizes.commitsPerTurn) {
          for (const doorbell of ['after', 'inside'] as const) {
            const key = `${commits}|${doorbell}`
            measured.set(key, [
              ...(measured.get(key) ?? []),
              await turnsRate(nodes, commits, doorbell),
            ])
            await reset()
          }
        }
      }
      const baseline = median(naive)
      for (const [key, rates] of measured) {
        const [commits, doorbell] = key.split('|') as [string, Doorbell]
        const value = median(rates)
        const ratios = rates.map((rate, round) => rate / (naive[round] as number))
        rows.push({
          group: 'turn',
          scenario:
            `${nodes} node${nodes === 1 ? '' : 's'}, ${commits} commit${commits === '1' ? '' : 's'}/turn, ` +
            `NOTIFY ${doorbell === 'after' ? 'after COMMIT' : 'inside'}: commits/s`,
          value: Math.round(value),
          unit: 'commits/s',
          baseline: { label: '1 commit/txn, NOTIFY inside', value: Math.round(baseline) },
          ratio: median(ratios),
          target: doorbell === 'after' ? `≥ ${AIM.toLocaleString('en-US')}/s, ≥ 8×` : '— (info)',
          ...(doorbell === 'after' ? { met: value >= AIM && median(ratios) >= 8 } : {}),
          note: `median of ${sizes.rounds} interleaved rounds (ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}); ${Math.round(value / Number(commits)).toLocaleString('en-US')} turns/s`,
        })
      }
    }
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => undefined)
    await admin.end()
  }
  return rows
}

const groups: readonly ScenarioGroup[] = [['turn', scenarios]]
await runBenchmark('cluster-turn', args, sizes, groups)
