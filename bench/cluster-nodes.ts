/**
 * Cluster nodes with the engine in the loop (docs/cluster.md, "The write turn"), on real
 * PostgreSQL. Every node is a dataspace in a child process of its own (bench/cluster-node.ts),
 * with its own event loop and connections, as a `dataspace serve --cluster` has (no HTTP).
 *
 * 1. Commits/s. A client is a loop asserting one record after another on a process of its own
 *    (fresh ids, ~150 B of data); the clients are split evenly over the nodes and their
 *    acknowledged writes counted over `seconds`, after a warm-up: 1 cluster node × 10 and × 50
 *    clients, 3 cluster nodes × 10 and × 50 clients in total. References in the same run: the
 *    single-node server (no `cluster`: the exclusive writer) with as many clients, and the
 *    BASELINE: the same writes on PostgreSQL alone, on as many connections as there are
 *    clients, each looping one simple query (one round trip) per write: `BEGIN; WITH r AS
 *    (UPDATE counter … RETURNING rev) INSERT INTO changes … (one ~150 B row); NOTIFY …; COMMIT`
 *    (bench/one-query-writes.ts): a revision, a row and the doorbell, one transaction per write
 *    with the NOTIFY inside it, nothing read back. Aim: ≥ 5,000 commits/s and ≥ 8× the
 *    baseline. Each node counts its turns and its backend's batches in the window: turns/s and
 *    commits per turn (the single writer: commits per batch).
 * 2. Convergence, on 3 cluster nodes A, B, C: asserts on A, paced (one at a time) and in bursts
 *    of 10 → their events at watchers on B and C, p50/p99/max; A's own watcher (same-node
 *    delivery) is the baseline. Target: p99 < 50 ms.
 *
 * Each configuration gets a fresh schema, dropped after it, and its own children, stopped by
 * pid. Configurations run one after another rather than interleaved: 50 baseline connections
 * and five nodes' pools together could pass PostgreSQL's default 100 connections. So that a
 * machine that got busier does not skew the ratios, the full run measures the baseline before
 * and after the nodes and compares with the mean.
 *
 * @example
 * //   node --import tsx bench/cluster-nodes.ts           (about 90 s; npm run bench:cluster-nodes)
 * //   node --import tsx bench/cluster-nodes.ts --quick   (about 20 s)
 * //   node --import tsx bench/cluster-nodes.ts --only=convergence
 * //   DATASPACE_TEST_POSTGRES_URL=postgres://… node --import tsx bench/cluster-nodes.ts
 */
import pg from 'pg'
import { describe, PG_URL, spread } from './cluster-follower.js'
import { NodeProcess, until } from './cluster-node.js'
import type { Loaded, NodeMode } from './cluster-node.js'
import { machineCpu, postgresCpu } from './cluster-throughput.js'
import type { Row } from './lib.js'
import { fmt } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import { oneQueryWritesRate } from './one-query-writes.js'
import { createTurnTables, resetTurnTables, TURN_CHANNEL } from './turn-loop.js'

const args = benchArgs()
const sizes = {
  /** The counted window of each load, after its warm-up. */
  seconds: args.quick ? 1 : 5,
  warmupSeconds: args.quick ? 0.5 : 1,
  /** Concurrent clients in total, split evenly over the nodes. */
  clients: [10, 50],
  clusterNodes: [1, 3],
  /** Baseline measurements per client count: before the nodes (and after, in the full run). */
  baselineRuns: args.quick ? 1 : 2,
  /** Timed writes per convergence variant, and the untimed ones warming node A up. */
  convergenceWrites: args.quick ? 200 : 1_000,
  warmupWrites: args.quick ? 50 : 200,
  paceMs: 2,
  burst: 10,
  burstGapMs: 10,
  data: "~150 B: kind 'job', { pool: 'cpu', note: 120 × 'x' }",
  nodes: 'child processes, a dataspace each (no HTTP)',
  baseline:
    'PostgreSQL alone, a connection per client, each looping 1 simple query per write: ' +
    'BEGIN; WITH r AS (UPDATE counter … RETURNING) INSERT INTO changes … (1 row); NOTIFY; COMMIT',
}
const SCHEMA = `ds_bench_nodes_${process.pid}`
const AIM = 5_000
const AIM_RATIO = 8
const TARGET_P99_MS = 50

const pct = (share: number): string => `${Math.round(share * 100)}%`
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** An admin connection, or `undefined` (the group is skipped) when PostgreSQL does not answer. */
async function connectAdmin(group: string): Promise<pg.Client | undefined> {
  const admin = new pg.Client({ connectionString: PG_URL })
  try {
    await admin.connect()
    return admin
  } catch (error) {
    console.log(`\n${group} skipped: ${PG_URL} does not answer (${(error as Error).message})`)
    return undefined
  }
}

const dropSchema = (admin: pg.Client, schema: string): Promise<unknown> =>
  admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined)

/** Starts `count` nodes on `schema`: the first alone (it creates the schema), then the others. */
async function startNodes(schema: string, mode: NodeMode, count: number): Promise<NodeProcess[]> {
  const first = await NodeProcess.start(schema, mode)
  const nodes = [first]
  try {
    const others = await Promise.allSettled(
      Array.from({ length: count - 1 }, () => NodeProcess.start(schema, mode)),
    )
    for (const other of others) if (other.status === 'fulfilled') nodes.push(other.value)
    for (const other of others) if (other.status === 'rejected') throw other.reason
    return nodes
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()))
    throw error
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Commits/s
// ---------------------------------------------------------------------------------------------

/**
 * The baseline's commits/s per client count (= connections), on PostgreSQL alone: one simple
 * query per write, the NOTIFY inside its transaction (bench/one-query-writes.ts).
 */
async function baselineRates(admin: pg.Client, rates: Map<number, number[]>): Promise<void> {
  const schema = `${SCHEMA}_raw`
  await createTurnTables(admin, schema)
  // A listener, as the nodes' doorbells are: the NOTIFY has a reader.
  await admin.query(`LISTEN ${TURN_CHANNEL}`)
  try {
    for (const clients of sizes.clients) {
      const rate = await oneQueryWritesRate({
        url: PG_URL,
        schema,
        connections: clients,
        seconds: sizes.seconds,
        warmupSeconds: sizes.warmupSeconds,
      })
      rates.set(clients, [...(rates.get(clients) ?? []), rate])
      await resetTurnTables(admin, schema)
    }
  } finally {
    await admin.query(`UNLISTEN ${TURN_CHANNEL}`)
    await dropSchema(admin, schema)
  }
}

/** One load on one configuration: what its nodes did, and how busy the machine was. */
interface Measured {
  readonly mode: NodeMode
  readonly nodes: number
  readonly clients: number
  readonly rate: number
  readonly loaded: readonly Loaded[]
  /** Share of all the machine's cores busy in the window. */
  readonly machineBusy: number
  /** PostgreSQL's CPU in the window, as a share of one core (NaN where /proc cannot tell). */
  readonly postgresCpu: number
}

/** Samples the machine's and PostgreSQL's CPU over [from, to) on the monotonic clock. */
async function sampleWindow(
  from: bigint,
  to: bigint,
): Promise<{ machineBusy: number; postgresCpu: number }> {
  await until(from)
  const machineBefore = machineCpu()
  const postgresBefore = postgresCpu()
  await until(to)
  const machineAfter = machineCpu()
  return {
    machineBusy:
      (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total),
    postgresCpu: (postgresCpu() - postgresBefore) / sizes.seconds,
  }
}

/** Every client count on `count` fresh nodes of `mode`, on a schema of their own. */
async function measureNodes(admin: pg.Client, mode: NodeMode, count: number): Promise<Measured[]> {
  const schema = `${SCHEMA}_${mode}_${count}`
  const nodes: NodeProcess[] = []
  try {
    await dropSchema(admin, schema)
    nodes.push(...(await startNodes(schema, mode, count)))
    const measured: Measured[] = []
    for (const clients of sizes.clients) {
      const warmupMs = sizes.warmupSeconds * 1000
      // A common start a little ahead, so that every node's window is the same one.
      const start = process.hrtime.bigint() + 200_000_000n
      const from = start + BigInt(warmupMs * 1e6)
      const window = sampleWindow(from, from + BigInt(sizes.seconds * 1e9))
      const loaded = await Promise.all(
        nodes.map((node, i) =>
          node.load({
            label: `c${clients}n${i}`,
            clients: Math.floor(clients / count) + (i < clients % count ? 1 : 0),
            startAt: start.toString(),
            warmupMs,
            seconds: sizes.seconds,
          }),
        ),
      )
      const commits = loaded.reduce((sum, node) => sum + node.commits, 0)
      measured.push({
        mode,
        nodes: count,
        clients,
        rate: commits / sizes.seconds,
        loaded,
        ...(await window),
      })
    }
    return measured
  } finally {
    await Promise.all(nodes.map((node) => node.stop()))
    await dropSchema(admin, schema)
  }
}

const mean = (values: readonly number[]): number =>
  values.reduce((sum, value) => sum + value, 0) / values.length

function baselineLabel(clients: number): string {
  return `PG alone, 1 query/write, NOTIFY inside, ${clients} conns`
}

function commitRows(baselines: Map<number, number[]>, measured: readonly Measured[]): Row[] {
  const seconds = sizes.seconds
  const rows: Row[] = []
  for (const [clients, rates] of baselines) {
    rows.push({
      group: 'commits',
      scenario: `BASELINE: PostgreSQL alone, 1 simple query per write (BEGIN; counter UPDATE + row INSERT; NOTIFY; COMMIT), ${clients} connections: commits/s`,
      value: Math.round(mean(rates)),
      unit: 'commits/s',
      baseline: null,
      ratio: null,
      target: '— (reference)',
      note:
        rates.length > 1
          ? `mean of before the nodes (${fmt(rates[0] ?? NaN)}) and after (${fmt(rates[1] ?? NaN)})`
          : 'measured before the nodes',
    })
  }
  for (const m of measured) {
    const base = mean(baselines.get(m.clients) ?? [])
    const ratio = m.rate / base
    const sum = (key: keyof Loaded): number =>
      m.loaded.reduce((total, node) => total + node[key], 0)
    const single = measured.find((s) => s.mode === 'single' && s.clients === m.clients)
    const batching =
      m.mode === 'cluster'
        ? `${fmt(sum('turns') / seconds)} turns/s, ${fmt(sum('batchCommits') / sum('turns'), 1)} commits/turn`
        : `${fmt(sum('batches') / seconds)} batches/s, ${fmt(sum('batchCommits') / sum('batches'), 1)} commits/batch`
    const perNode =
      m.nodes > 1
        ? `; per node ${m.loaded.map((node) => fmt(node.commits / seconds)).join(' / ')} commits/s`
        : ''
    const versusSingle =
      m.mode === 'cluster' && single !== undefined
        ? `; ${fmt(m.rate / single.rate)}× the single-node server`
        : ''
    rows.push({
      group: 'commits',
      scenario:
        m.mode === 'single'
          ? `single-node server (exclusive writer), ${m.clients} clients: commits/s`
          : `${plural(m.nodes, 'cluster node')} × ${m.clients} clients${m.nodes > 1 ? ' in total' : ''}: commits/s`,
      value: Math.round(m.rate),
      unit: 'commits/s',
      baseline: { label: baselineLabel(m.clients), value: Math.round(base) },
      ratio,
      ...(m.mode === 'cluster'
        ? {
            target: `≥ ${AIM.toLocaleString('en-US')}/s, ≥ ${AIM_RATIO}×`,
            met: m.rate >= AIM && ratio >= AIM_RATIO,
          }
        : { target: '— (reference)' }),
      note:
        `${batching}${perNode}${versusSingle}; node CPU ` +
        `${m.loaded.map((node) => pct(node.cpu / seconds)).join(' / ')} of a core, ` +
        `PostgreSQL ${pct(m.postgresCpu)}, machine ${pct(m.machineBusy)} busy`,
    })
  }
  return rows
}

async function commits(): Promise<Row[]> {
  const admin = await connectAdmin('commits')
  if (admin === undefined) return []
  try {
    const baselines = new Map<number, number[]>()
    await baselineRates(admin, baselines)
    const measured: Measured[] = []
    measured.push(...(await measureNodes(admin, 'single', 1)))
    for (const count of sizes.clusterNodes) {
      measured.push(...(await measureNodes(admin, 'cluster', count)))
    }
    if (sizes.baselineRuns > 1) await baselineRates(admin, baselines)
    return commitRows(baselines, measured)
  } finally {
    await admin.end()
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Convergence
// ---------------------------------------------------------------------------------------------

async function variant(nodes: readonly NodeProcess[], burst: number): Promise<Row[]> {
  const [a] = nodes as [NodeProcess, ...NodeProcess[]]
  const kind = burst === 1 ? 'paced' : 'burst'
  const writes = sizes.convergenceWrites
  await Promise.all(nodes.map((node) => node.watch(kind)))
  await a.write(kind, writes, burst, burst === 1 ? sizes.paceMs : sizes.burstGapMs)
  // Records are asserted once each, never retracted before the end: one asserted event a write.
  const [own, ...others] = await Promise.all(nodes.map((node) => node.collect(kind, writes)))
  const seen = [own, ...others]
  const mine = spread(own?.latencies ?? [])
  const each = others.map((other) => spread(other.latencies))
  const theirs = spread(others.flatMap((other) => other.latencies))
  const resets = seen.reduce((sum, s) => sum + (s?.resets ?? 0), 0)
  const missing = seen.some((s) => s?.latencies.length !== writes)
  const name =
    burst === 1
      ? `paced asserts on A (one at a time, ${sizes.paceMs} ms apart)`
      : `bursts of ${burst} concurrent asserts on A, ${sizes.burstGapMs} ms apart`
  const check =
    `${writes} writes; ${missing ? 'SOME EVENTS MISSING' : 'every event seen by every watcher'}` +
    (resets > 0 ? `; ${resets} watch resets` : '')
  const sameNode = { label: "A's own watcher", value: 0 }
  const row = (scenario: string, value: number, extra: Partial<Row> = {}): Row => ({
    group: 'convergence',
    scenario: `${name}: ${scenario}`,
    value,
    unit: 'ms',
    baseline: null,
    ratio: null,
    target: '— (info)',
    ...extra,
  })
  return [
    row("A's own watcher (same node), p99", mine.p99, { note: `${describe(mine)}; ${check}` }),
    row('watchers on B and C, p50', theirs.p50, { baseline: { ...sameNode, value: mine.p50 } }),
    row('watchers on B and C, p99', theirs.p99, {
      baseline: { ...sameNode, value: mine.p99 },
      target: `< ${TARGET_P99_MS} ms`,
      met: theirs.p99 < TARGET_P99_MS && !missing,
      note:
        `B: ${describe(each[0] ?? spread([]))}; C: ${describe(each[1] ?? spread([]))}; ` +
        `${fmt(theirs.p99 - mine.p99)} ms over same-node delivery at p99`,
    }),
    row('watchers on B and C, max', theirs.max, { baseline: { ...sameNode, value: mine.max } }),
  ]
}

async function convergence(): Promise<Row[]> {
  const admin = await connectAdmin('convergence')
  if (admin === undefined) return []
  const schema = `${SCHEMA}_convergence`
  try {
    await dropSchema(admin, schema)
    const nodes: NodeProcess[] = []
    try {
      nodes.push(...(await startNodes(schema, 'cluster', 3)))
      const [a] = nodes as [NodeProcess, ...NodeProcess[]]
      // Warm node A's write path (JIT, connections) and the others' following, untimed.
      await a.write('warm', sizes.warmupWrites, sizes.burst, 1)
      return [...(await variant(nodes, 1)), ...(await variant(nodes, sizes.burst))]
    } finally {
      await Promise.all(nodes.map((node) => node.stop()))
    }
  } finally {
    await dropSchema(admin, schema)
    await admin.end()
  }
}

await runBenchmark('cluster-nodes', args, sizes, [
  ['commits', commits],
  ['convergence', convergence],
])
