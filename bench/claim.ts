/**
 * The claim benchmark: the Agent Substrate scheduler's locality-aware placement (RFC "Flexible &
 * Non-Ossifying Control Plane Persistence Layer") over 100k workers. The measured path is the
 * two-stage claim — `pool=P,actor_id=,cached_snapshots=S`, else `pool=P,actor_id=` — each stage
 * one atomic `claim` served from a declared index. The baseline, measured in the same run on the
 * same dataspace, is what the RFC describes today: list every worker, filter in JS (a free worker
 * in the pool with the snapshot, else any free worker in the pool), then write the chosen one
 * back. Both pick the same worker (checked on every baseline sample). Prints a table and writes
 * `bench/results/claim.json`. Timings are never asserted.
 *
 * Every sample claims a worker and then releases it (not timed), so the fleet stays in the same
 * state throughout: half the workers busy, at random. Baseline samples are interleaved with the
 * claim samples, so both see the same machine.
 *
 * Backends: {@link backends} is a factory list: memory, SQLite (a temp file) and PostgreSQL (a
 * schema of its own, dropped after; skipped when the server does not answer). On `memory`,
 * `sqlite` and `postgres` the worker kind is resident, so a claim is served from memory and a
 * durable backend adds the wait for its commit (group commit: one transaction per turn). The
 * `non-resident` rows declare it `resident: false`: each claim's read goes to the database's
 * indexes (pushdown), and so does the baseline's list of every worker (fewer samples there).
 *
 * @example
 * // Full run (about 30 s on 2 cores):
 * //   npm run bench:claim
 * // Smoke run (about 2 s):
 * //   npm run bench:claim -- --quick
 * // One backend only (groups are named by backend):
 * //   npm run bench:claim -- --only=memory
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { postgresBackend } from '../src/backends/postgres/index.js'
import { sqliteBackend } from '../src/backends/sqlite/index.js'
import { createDataspace, openDataspace } from '../src/index.js'
import type { DataspaceApi, DataspaceRecord, Op, Process } from '../src/index.js'
import type { Row } from './lib.js'
import { fmt, msSince, now, percentile, prng, settledHeap } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'

const WORKER = 'substrate.worker'

/** How a backend is made and torn down: one entry per backend the benchmark compares. */
export interface BackendFactory {
  readonly name: string
  create(): Promise<DataspaceApi>
  /**
   * `false`: the worker kind is declared non-resident, so claims and the baseline's list go to
   * the backend's indexes (docs/backends.md, "Non-resident kinds") instead of memory.
   */
  readonly resident: boolean
  /** Fewer samples where one baseline sample reads 100k rows from the database. */
  readonly sizes?: (sizes: ClaimSizes) => ClaimSizes
}

const PG_URL = process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const scratch = mkdtempSync(join(tmpdir(), 'ds-claim-'))
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }))

/** The backends to measure. A new backend is one more line here. */
const fewer = (sizes: ClaimSizes): ClaimSizes => ({
  workers: sizes.workers,
  claims: Math.min(sizes.claims, 2_000),
  baselines: Math.min(sizes.baselines, 40),
})

export const backends: readonly BackendFactory[] = [
  {
    name: 'memory',
    resident: true,
    create: () => Promise.resolve(createDataspace({ backend: 'memory' })),
  },
  { name: 'sqlite', resident: true, create: sqlite },
  { name: 'postgres', resident: true, create: postgres },
  { name: 'sqlite-nonresident', resident: false, create: sqlite, sizes: fewer },
  { name: 'postgres-nonresident', resident: false, create: postgres, sizes: fewer },
]

function sqlite(): Promise<DataspaceApi> {
  return openDataspace({
    backend: sqliteBackend({ path: join(scratch, `claim-${Date.now()}.db`) }),
  })
}

async function postgres(): Promise<DataspaceApi> {
  const schema = `ds_bench_claim_${process.pid}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin.end()
  const ds = await openDataspace({ backend: postgresBackend({ url: PG_URL, schema }) })
  const close = ds.close.bind(ds)
  // The schema goes with the dataspace.
  ds.close = async () => {
    await close()
    const drop = new pg.Client({ connectionString: PG_URL })
    await drop.connect()
    await drop.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await drop.end()
  }
  return ds
}

export interface ClaimSizes {
  readonly workers: number
  /** Two-stage claims timed. */
  readonly claims: number
  /** Baseline samples (list + filter + write), interleaved with the claims. */
  readonly baselines: number
}

export const CLAIM_SIZES: ClaimSizes = { workers: 100_000, claims: 20_000, baselines: 1_000 }
export const CLAIM_SIZES_QUICK: ClaimSizes = { workers: 100_000, claims: 500, baselines: 20 }

/** Pools and their share of the fleet: a mix of large and small pools. */
const POOLS: readonly (readonly [pool: string, share: number])[] = [
  ['cpu', 0.5],
  ['highmem', 0.2],
  ['batch', 0.2],
  ['gpu-l4', 0.08],
  ['gpu-h100', 0.02],
]
/** Snapshot URIs workers may have hot-cached. */
const SNAPSHOTS = 1000
/** Share of workers with 1–3 snapshots cached; the others have none. */
const CACHING = 0.3
/** Share of workers running an actor at any time. */
const BUSY = 0.5
/** Share of requests for a snapshot cached nowhere (stage 1 misses, stage 2 places them). */
const UNCACHED_REQUESTS = 0.3
/** Records per `transact` when loading. */
const BATCH = 1000

interface Worker {
  readonly pool: string
  readonly node_name: string
  readonly size: string
  readonly gpu_type: string
  readonly status: string
  readonly actor_id: string
  readonly cached_snapshots: readonly string[]
}

interface Request {
  readonly actor: string
  readonly pool: string
  readonly snapshot: string
}

function pickPool(r: number): string {
  let acc = 0
  for (const [pool, share] of POOLS) {
    acc += share
    if (r < acc) return pool
  }
  return (POOLS[0] as readonly [string, number])[0]
}

const snapshot = (n: number): string => `snap://agents/a${String(n).padStart(4, '0')}@v1`

function makeWorker(n: number, rand: () => number): Worker {
  const pool = pickPool(rand())
  const cached: string[] = []
  if (rand() < CACHING) {
    const count = 1 + Math.floor(rand() * 3)
    while (cached.length < count) {
      const s = snapshot(Math.floor(rand() * SNAPSHOTS))
      if (!cached.includes(s)) cached.push(s)
    }
  }
  return {
    pool,
    node_name: `node-${Math.floor(n / 8)}`,
    size: rand() < 0.5 ? 'medium' : 'large',
    gpu_type: pool.startsWith('gpu-') ? pool.slice(4) : '',
    status: 'ready',
    actor_id: rand() < BUSY ? `running-${n}` : '',
    cached_snapshots: cached,
  }
}

/** The RFC's selectors, in its map form. */
function selectors(request: Request): {
  readonly warm: Readonly<Record<string, string>>
  readonly cold: Readonly<Record<string, string>>
} {
  return {
    warm: { pool: request.pool, actor_id: '', cached_snapshots: request.snapshot },
    cold: { pool: request.pool, actor_id: '' },
  }
}

/** The measured path: two claims at most, each served from an index. */
async function twoStageClaim(
  scheduler: Process,
  request: Request,
): Promise<{ worker: DataspaceRecord<Worker> | undefined; warm: boolean }> {
  const { warm, cold } = selectors(request)
  const patch = { actor_id: request.actor }
  const hot = await scheduler.claim<Worker>(WORKER, { fields: warm, patch })
  if (hot !== undefined) return { worker: hot, warm: true }
  return { worker: await scheduler.claim<Worker>(WORKER, { fields: cold, patch }), warm: false }
}

/**
 * The baseline: the RFC's "retrieve every single worker and filter in memory", then the write.
 * The write is a claim by exact id guarded by `actor_id=` (what a careful store does: a CAS),
 * which costs one record lookup.
 */
async function listAndFilter(
  ds: DataspaceApi,
  scheduler: Process,
  request: Request,
): Promise<DataspaceRecord<Worker> | undefined> {
  const { items } = await ds.list<Worker>(WORKER)
  let fallback: DataspaceRecord<Worker> | undefined
  let chosen: DataspaceRecord<Worker> | undefined
  for (const worker of items) {
    const data = worker.data
    if (data.pool !== request.pool || data.actor_id !== '') continue
    if (data.cached_snapshots.includes(request.snapshot)) {
      chosen = worker
      break
    }
    fallback ??= worker
  }
  chosen ??= fallback
  if (chosen === undefined) return undefined
  return scheduler.claim<Worker>(WORKER, {
    id: chosen.id,
    fields: { actor_id: '' },
    patch: { actor_id: request.actor },
  })
}

/** Frees a worker again (not timed), so every sample sees the same fleet. */
async function release(scheduler: Process, worker: DataspaceRecord<Worker>): Promise<void> {
  await scheduler.claim(WORKER, { id: worker.id, patch: { actor_id: '' } })
}

async function load(ds: DataspaceApi, count: number, resident: boolean): Promise<void> {
  await ds.defineKind(WORKER, {
    fields: ['pool', 'node_name', 'size', 'gpu_type', 'status', 'actor_id', 'cached_snapshots'],
    indexes: ['pool', 'node_name', 'status', 'actor_id', 'cached_snapshots'],
    resident,
  })
  // One owner for the whole fleet: in the example each worker is its own session, which changes
  // nothing for the claim (it never changes the owner).
  const fleet = ds.process('fleet')
  const rand = prng(42)
  for (let from = 0; from < count; from += BATCH) {
    const ops: Op[] = []
    for (let n = from; n < Math.min(count, from + BATCH); n++) {
      const id = `worker-${String(n).padStart(6, '0')}`
      ops.push({ op: 'assert', kind: WORKER, id, data: makeWorker(n, rand) })
    }
    await fleet.transact({ then: ops })
  }
}

function makeRequests(count: number): Request[] {
  const rand = prng(7)
  return Array.from({ length: count }, (_, i) => ({
    actor: `actor-${i}`,
    pool: pickPool(rand()),
    snapshot:
      rand() < UNCACHED_REQUESTS
        ? `snap://agents/uncached-${i}@v1`
        : snapshot(Math.floor(rand() * SNAPSHOTS)),
  }))
}

async function claimScenarios(factory: BackendFactory, all: ClaimSizes): Promise<Row[]> {
  const sizes = factory.sizes?.(all) ?? all
  const ds = await factory.create()
  const loadStart = now()
  await load(ds, sizes.workers, factory.resident)
  const loadMs = msSince(loadStart)
  const scheduler = ds.process('scheduler')
  const requests = makeRequests(sizes.claims)
  const stride = Math.max(1, Math.floor(sizes.claims / sizes.baselines))

  const warmMs: number[] = []
  const coldMs: number[] = []
  const allMs: number[] = []
  const baselineMs: number[] = []
  const problems: string[] = []
  let unplaced = 0
  settledHeap()
  for (const [i, request] of requests.entries()) {
    let start = now()
    const { worker, warm } = await twoStageClaim(scheduler, request)
    const ms = msSince(start)
    allMs.push(ms)
    ;(warm ? warmMs : coldMs).push(ms)
    if (worker === undefined) unplaced++
    else await release(scheduler, worker)

    if (i % stride !== 0 || baselineMs.length >= sizes.baselines) continue
    start = now()
    const chosen = await listAndFilter(ds, scheduler, request)
    baselineMs.push(msSince(start))
    if (chosen?.id !== worker?.id && problems.length < 5) {
      problems.push(`${request.actor}: claim chose ${worker?.id}, list+filter ${chosen?.id}`)
    }
    if (chosen !== undefined) await release(scheduler, chosen)
  }

  // What the planner does with the selectors of the first request for a cached snapshot.
  const typical = requests.find((r) => !r.snapshot.includes('uncached')) as Request
  const explainWarm = await ds.explain(WORKER, { fields: selectors(typical).warm })
  const explainCold = await ds.explain(WORKER, { fields: selectors(typical).cold })
  await ds.close()

  const p50 = percentile(allMs, 50)
  const p99 = percentile(allMs, 99)
  const base50 = percentile(baselineMs, 50)
  const base99 = percentile(baselineMs, 99)
  const group = `claim[${factory.name}]`
  const over = `over ${fmt(sizes.workers)} workers`
  const baseline = (value: number): Row['baseline'] => ({
    label: 'list all + filter in JS + write',
    value,
  })
  const checked = `${baselineMs.length} baseline samples chose the same worker as the claim${problems.length > 0 ? '' : ' every time'}`
  return [
    {
      group,
      scenario: `two-stage locality claim ${over}, p50`,
      value: p50,
      unit: 'ms',
      baseline: baseline(base50),
      ratio: base50 / p50,
      target: '≥ 100× faster',
      met: base50 / p50 >= 100 && problems.length === 0,
      note: [
        `${fmt(allMs.length)} claims, ${fmt((warmMs.length / allMs.length) * 100)}% warm (stage 1 hit), ${unplaced} unplaced`,
        checked,
        `${fmt(sizes.workers)} workers loaded in ${fmt(loadMs / 1000)} s`,
        `explain: stage 1 ${explainWarm.index} (${explainWarm.candidates} candidates), stage 2 ${explainCold.index} (${explainCold.candidates} candidates)`,
        ...problems.map((p) => `PROBLEM: ${p}`),
      ].join('; '),
    },
    {
      group,
      scenario: `two-stage locality claim ${over}, p99`,
      value: p99,
      unit: 'ms',
      baseline: baseline(base99),
      ratio: base99 / p99,
      target: '≥ 100× faster',
      met: base99 / p99 >= 100 && problems.length === 0,
    },
    {
      group,
      scenario: `stage 1 hit (hot snapshot), p50 / p99: ${fmt(percentile(warmMs, 50), 3)} / ${fmt(percentile(warmMs, 99), 3)}`,
      value: percentile(warmMs, 50),
      unit: 'ms',
      baseline: baseline(base50),
      ratio: base50 / percentile(warmMs, 50),
      target: 'info',
    },
    {
      group,
      scenario: `stage 1 miss + stage 2 (any free worker), p50 / p99: ${fmt(percentile(coldMs, 50), 3)} / ${fmt(percentile(coldMs, 99), 3)}`,
      value: percentile(coldMs, 50),
      unit: 'ms',
      baseline: baseline(base50),
      ratio: base50 / percentile(coldMs, 50),
      target: 'info',
    },
  ]
}

const args = benchArgs()
const sizes = args.quick ? CLAIM_SIZES_QUICK : CLAIM_SIZES
const groups: ScenarioGroup[] = backends.map((factory) => [
  factory.name,
  () => claimScenarios(factory, sizes),
])
await runBenchmark('claim', args, { ...sizes, backends: backends.map((b) => b.name) }, groups)
