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
import { createTurnTables, resetTurnTables, TURN_CHANNEL, turnsRate } from './turn-loop.js'
import type { Doorbell } from './turn-loop.js'

const args = benchArgs()
const sizes = {
  seconds: args.quick ? 1 : 2,
  rounds: args.quick ? 1 : 3,
  nodes: [1, 3],
  commitsPerTurn: [1, 16, 64],
}
const PG_URL = process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SCHEMA = `ds_bench_turn_${process.pid}`
const AIM = 5_000

/** Commits/s of `nodes` connections running turns of `commits` commits for `seconds`. */
function rate(nodes: number, commits: number, doorbell: Doorbell): Promise<number> {
  const load = { connections: nodes, commits, doorbell, seconds: sizes.seconds }
  return turnsRate({ url: PG_URL, schema: SCHEMA, ...load })
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
    await createTurnTables(admin, SCHEMA)
    // A listener on another connection, as other nodes would be: NOTIFY has a reader.
    await admin.query(`LISTEN ${TURN_CHANNEL}`)
    const reset = (): Promise<void> => resetTurnTables(admin, SCHEMA)
    for (const nodes of sizes.nodes) {
      // Interleaved rounds: every design sees the same machine, round by round.
      const naive: number[] = []
      const measured = new Map<string, number[]>()
      for (let round = 0; round < sizes.rounds; round++) {
        naive.push(await rate(nodes, 1, 'inside'))
        await reset()
        for (const commits of sizes.commitsPerTurn) {
          for (const doorbell of ['after', 'inside'] as const) {
            const key = `${commits}|${doorbell}`
            measured.set(key, [...(measured.get(key) ?? []), await rate(nodes, commits, doorbell)])
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
