/**
 * Cluster mode, slice 3 (docs/cluster.md, "Followers"), on real PostgreSQL: one writer dataspace
 * in this process and follower dataspaces (`follow: true`) in child processes, each with its own
 * event loop and connections as a `dataspace serve --follow` has (no HTTP in between).
 *
 * 1. Convergence: from an assert called on the writer until its event reaches a watcher on a
 *    follower (p50/p99/max), for writes paced one at a time and for bursts of concurrent
 *    writers. Baselines, on the same writes: the writer's own watcher (local delivery) and a
 *    follower whose doorbell never rings (poll only, every 250 ms). Target: p99 < 50 ms.
 * 2. Writer throughput: commits/s of concurrent writers with 2 followers attached (polling only;
 *    with the doorbell; with the doorbell and watchers) against 0 followers, in interleaved
 *    rounds, with the CPU of the machine, the writer, the followers and PostgreSQL per window
 *    (bench/cluster-throughput.ts).
 *
 * @example
 * //   node --import tsx bench/cluster.ts           (about 90 s; npm run bench:cluster)
 * //   node --import tsx bench/cluster.ts --quick   (about 15 s)
 * //   DATASPACE_TEST_POSTGRES_URL=postgres://… node --import tsx bench/cluster.ts
 */
import pg from 'pg'
import { postgresBackend } from '../src/backends/postgres/index.js'
import { openDataspace } from '../src/index.js'
import type { Dataspace } from '../src/index.js'
import {
  describe,
  FollowerProcess,
  PG_URL,
  POLL_MS,
  sleep,
  spread,
  stamp,
  TimedWatch,
} from './cluster-follower.js'
import { throughput, throughputRows } from './cluster-throughput.js'
import type { Row } from './lib.js'
import { fmt } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'

const args = benchArgs()
const sizes = {
  /** Timed writes per convergence variant. */
  writes: args.quick ? 200 : 2_000,
  /** Pause after each paced write, and after each burst. */
  paceMs: 2,
  burstGapMs: 10,
  /** Concurrent writers: a burst's size, and the throughput phase's writers. */
  concurrency: 10,
  throughputSeconds: args.quick ? 1 : 3,
  /** Throughput rounds (0 followers, 2, 2 with watchers; then 0 once more at the end). */
  rounds: args.quick ? 1 : 5,
  followPollMs: POLL_MS,
  followers: 'child processes (in-process follower dataspaces, no server)',
}
const SCHEMA = `ds_bench_cluster_${process.pid}`
const TARGET_P99_MS = 50

/** The writes of one variant: one writer at a time, or bursts of `concurrency` at once. */
async function write(writer: Dataspace, kind: string, burst: boolean): Promise<void> {
  const size = burst ? sizes.concurrency : 1
  const procs = Array.from({ length: size }, (_, i) => writer.process(`${kind}-${i}`))
  for (let at = 0; at < sizes.writes; at += size) {
    await Promise.all(procs.map((proc, i) => proc.assert(kind, `r${at + i}`, { t: stamp() })))
    await sleep(burst ? sizes.burstGapMs : sizes.paceMs)
  }
  await Promise.all(procs.map((proc) => proc.exit()))
}

async function convergence(
  writer: Dataspace,
  followers: readonly FollowerProcess[],
  pollOnly: FollowerProcess,
  burst: boolean,
): Promise<Row[]> {
  const kind = burst ? 'burst' : 'paced'
  const local = await TimedWatch.open(writer, kind)
  await Promise.all([...followers, pollOnly].map((follower) => follower.watch(kind)))
  await write(writer, kind, burst)
  // Records are asserted once each, never retracted: one asserted event per write.
  const owner = await local.collect(sizes.writes)
  const [polled, ...rung] = await Promise.all(
    [pollOnly, ...followers].map((follower) => follower.collect(kind, sizes.writes)),
  )
  const mine = spread(owner.latencies)
  const poll = spread(polled?.latencies ?? [])
  const each = rung.map((seen) => spread(seen.latencies))
  const theirs = spread(rung.flatMap((seen) => seen.latencies))
  const resets = [owner, polled, ...rung].reduce((sum, seen) => sum + (seen?.resets ?? 0), 0)
  const missing = [owner, polled, ...rung].some((seen) => seen?.latencies.length !== sizes.writes)
  const variant = burst
    ? `bursts of ${sizes.concurrency} concurrent writes, ${sizes.burstGapMs} ms apart`
    : `paced writes (one at a time, ${sizes.paceMs} ms apart)`
  const check =
    `${sizes.writes} writes; ${missing ? 'SOME EVENTS MISSING' : 'every event seen by every watcher'}` +
    (resets > 0 ? `; ${resets} watch resets` : '')
  const row = (
    scenario: string,
    value: number,
    baseline: Row['baseline'],
    extra: Partial<Row> = {},
  ): Row => ({
    group: 'convergence',
    scenario: `${variant}: ${scenario}`,
    value,
    unit: 'ms',
    baseline,
    ratio: baseline?.value != null ? baseline.value / value : null,
    target: '— (info)',
    ...extra,
  })
  return [
    row("writer's own watcher (local delivery), p99", mine.p99, null, {
      note: `${describe(mine)}; ${check}`,
    }),
    row('follower, poll only (doorbell ignored), p99', poll.p99, null, {
      note: `${describe(poll)} (followPollMs ${POLL_MS})`,
    }),
    row('2 followers (doorbell), p50', theirs.p50, { label: 'poll only', value: poll.p50 }),
    row(
      '2 followers (doorbell), p99',
      theirs.p99,
      { label: 'poll only', value: poll.p99 },
      {
        target: `< ${TARGET_P99_MS} ms`,
        met: theirs.p99 < TARGET_P99_MS && !missing,
        note:
          `each follower: ${each.map(describe).join('; ')}; ` +
          `${fmt(theirs.p99 - mine.p99)} ms over local delivery at p99`,
      },
    ),
    row('2 followers (doorbell), max', theirs.max, { label: 'poll only', value: poll.max }),
  ]
}

async function scenarios(): Promise<Row[]> {
  const admin = new pg.Client({ connectionString: PG_URL })
  try {
    await admin.connect()
  } catch (error) {
    console.log(`\ncluster skipped: ${PG_URL} does not answer (${(error as Error).message})`)
    return []
  }
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  const writer = await openDataspace({ backend: postgresBackend({ url: PG_URL, schema: SCHEMA }) })
  const children: FollowerProcess[] = []
  try {
    // Warm the writer's commit path (JIT, pool connections) before anything is timed.
    await throughput(writer, 'warm', sizes)
    const followers = [
      await FollowerProcess.start(SCHEMA, 'doorbell'),
      await FollowerProcess.start(SCHEMA, 'doorbell'),
    ]
    const pollOnly = await FollowerProcess.start(SCHEMA, 'poll')
    children.push(...followers, pollOnly)
    const rows = [
      ...(await convergence(writer, followers, pollOnly, false)),
      ...(await convergence(writer, followers, pollOnly, true)),
    ]
    await Promise.all(children.map((child) => child.stop()))
    rows.push(...(await throughputRows(writer, SCHEMA, sizes)))
    return rows
  } finally {
    await Promise.all(children.map((child) => child.stop()))
    await writer.close()
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => undefined)
    await admin.end()
  }
}

await runBenchmark('cluster', args, sizes, [['followers', scenarios]])
