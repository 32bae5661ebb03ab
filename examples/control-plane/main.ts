// The Agent Substrate control plane over the network: worker sessions assert themselves, several
// scheduler OS processes place actors with the RFC's locality-aware two-stage `claim`, and a
// node is killed so that its workers disappear and their actors are placed again.
//   npx tsx examples/control-plane/main.ts [--backend=memory|sqlite:PATH|postgres://…]
//   npx tsx examples/control-plane/main.ts --cluster
// Over SQLite or PostgreSQL the worker and actor kinds are non-resident: they live in the
// database, and every claim, list and get below is served from its indexes. `--cluster` runs
// three server nodes of one cluster on a fresh PostgreSQL schema (DATASPACE_EXAMPLE_POSTGRES_URL,
// DATASPACE_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test) and spreads every
// client over them: scheduler i on server i, node agent j on server j mod 3, the API server on
// server 1 and the referee's watch on server 2.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Conflict } from '../../src/index.js'
import type { Dataspace, DataspaceRecord } from '../../src/index.js'
import { clusterServers, oneServer } from './cluster.js'
import { ACTOR, WORKER } from './model.js'
import type { Actor, Worker } from './model.js'

const NODES = ['node-1', 'node-2', 'node-3', 'node-4']
const SCHEDULERS = ['scheduler-1', 'scheduler-2', 'scheduler-3']
const DEADLINE_MS = 30_000

/** Hot caches, chosen so that every wave-1 actor can get a warm worker whatever order the schedulers race in. */
const CACHES: Readonly<Record<string, readonly string[]>> = {
  'worker-1-1': ['snap://agent-a'],
  'worker-1-2': ['snap://agent-b'],
  'worker-1-4': ['snap://agent-g'],
  'worker-2-1': ['snap://agent-a'],
  'worker-2-2': ['snap://agent-c'],
  'worker-3-1': ['snap://agent-a', 'snap://agent-b'],
  'worker-3-4': ['snap://agent-g'],
  'worker-4-1': ['snap://agent-c'],
}

/** Each node runs 3 CPU workers, 1 GPU worker and 6 batch workers: 12 + 4 + 24 in all. */
function workersOf(node: number): unknown[] {
  const worker = (id: string, pool: string, size: string, gpu_type = ''): unknown => ({
    id,
    pool,
    size,
    gpu_type,
    cached_snapshots: CACHES[id] ?? [],
  })
  return [
    ...[1, 2, 3].map((i) => worker(`worker-${node}-${i}`, 'cpu', 'medium')),
    worker(`worker-${node}-4`, 'gpu', 'xlarge', 'nvidia-l4'),
    ...[1, 2, 3, 4, 5, 6].map((i) => worker(`batch-${node}-${i}`, 'batch', 'small')),
  ]
}
const WORKERS = NODES.length * 10

/** Wave 1: every snapshot is hot somewhere in the pool. Wave 2: none is (fallback to any free worker). */
const WAVES: readonly (readonly [id: string, pool: string, snapshot: string])[][] = [
  [
    ['actor-a1', 'cpu', 'snap://agent-a'],
    ['actor-a2', 'cpu', 'snap://agent-a'],
    ['actor-b1', 'cpu', 'snap://agent-b'],
    ['actor-c1', 'cpu', 'snap://agent-c'],
    ['actor-g1', 'gpu', 'snap://agent-g'],
  ],
  [
    ['actor-x1', 'cpu', 'snap://agent-x'],
    ['actor-x2', 'cpu', 'snap://agent-x'],
    ['actor-x3', 'cpu', 'snap://agent-x'],
    ['actor-y1', 'gpu', 'snap://agent-y'],
    // A burst: 16 batch actors in one commit, for 24 batch workers, raced for by every scheduler.
    ...Array.from(
      { length: 16 },
      (_, i) => [`job-${String(i + 1).padStart(2, '0')}`, 'batch', 'snap://batch-job'] as const,
    ),
  ],
]

const backendArg = process.argv.find((arg) => arg.startsWith('--backend='))
const cluster = process.argv.includes('--cluster')
if (cluster && backendArg !== undefined) {
  throw new Error('--cluster runs on PostgreSQL (DATASPACE_EXAMPLE_POSTGRES_URL); drop --backend')
}
const servers = cluster
  ? await clusterServers(
      process.env.DATASPACE_EXAMPLE_POSTGRES_URL ??
        process.env.DATASPACE_TEST_POSTGRES_URL ??
        'postgres://postgres@127.0.0.1:5432/test',
    )
  : await oneServer(backendArg?.slice('--backend='.length) ?? 'memory')
/** The server the i-th client of a kind connects to: all on one, or round robin over the cluster. */
const serverUrl = (i: number): string => servers.urls[i % servers.urls.length] as string
// The API server runs on the first server; the referee watches on the second (in a cluster:
// another node than the one the controller writes to, so every event it sees crossed nodes).
const [ds, refereeDs = ds] = servers.nodes as [Dataspace, Dataspace?]
console.log(`servers: ${servers.label}`)
for (const [n, url] of servers.urls.entries()) {
  const here = (names: readonly string[]): string[] =>
    names.filter((_, i) => i % servers.urls.length === n)
  const roles = [
    ...(n === 0 ? ['API server'] : []),
    ...(n === 1 % servers.urls.length ? ["referee's watch"] : []),
  ]
  console.log(
    `  server-${n + 1} ${url}: ${[...roles, ...here(SCHEDULERS), ...here(NODES)].join(', ')}`,
  )
}
const controller = ds.process('controller') // the API server's own writer: creates and requeues actors

// The referee: follows every change to every worker from the start and checks, at each commit,
// that a worker never goes from one actor to another and an actor is never on two live workers.
const violations: string[] = []
const holder = new Map<string, string>() // actor → the live worker running it
const requeued: string[] = []
let assignments = 0
const workers = refereeDs.watch<Worker>(WORKER)
;(async () => {
  for await (const event of workers) {
    if (event.type === 'reset') violations.push(`watch reset (${event.reason}): the log has a gap`)
    if (event.type === 'asserted') {
      const worker = event.record.id
      const before = event.previous?.data.actor_id ?? ''
      const after = event.record.data.actor_id
      if (before === after) continue
      if (before !== '') violations.push(`${worker} went from ${before} to ${after || 'free'}`)
      if (after === '') continue
      assignments++
      const other = holder.get(after)
      if (other !== undefined && other !== worker)
        violations.push(`${after} is on ${other} and ${worker}`)
      holder.set(after, worker)
    }
    if (event.type === 'retracted') {
      const { id: worker, data } = event.record
      console.log(
        `${worker} is gone (${event.reason})${data.actor_id ? `, it ran ${data.actor_id}` : ''}`,
      )
      if (data.actor_id === '' || holder.get(data.actor_id) !== worker) continue
      holder.delete(data.actor_id)
      if (event.reason === 'owner-exit') await requeue(data.actor_id, worker)
    }
  }
})().catch((error: unknown) => violations.push(`the referee's watch failed: ${String(error)}`))

/** Puts an actor whose worker died back to pending (guarded: only if it still points at that worker, or at none yet). */
async function requeue(actor: string, worker: string): Promise<void> {
  for (const assigned of [worker, '']) {
    try {
      await controller.transact({
        if: [
          { kind: ACTOR, id: actor, field: 'status', equals: 'scheduled' },
          { kind: ACTOR, id: actor, field: 'worker_id', equals: assigned },
        ],
        then: [
          {
            op: 'claim',
            kind: ACTOR,
            id: actor,
            patch: { status: 'pending', worker_id: '', requeued_from: worker },
          },
        ],
      })
      requeued.push(actor)
      console.log(`${actor} requeued`)
      return
    } catch (error) {
      if (!(error instanceof Conflict)) throw error
    }
  }
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Every actor of `ids` is scheduled, and its worker is alive and runs it. */
async function placed(ids: readonly string[]): Promise<boolean> {
  for (const id of ids) {
    const actor = await ds.get<Actor>(ACTOR, id)
    if (actor?.data.status !== 'scheduled' || actor.data.worker_id === '') return false
    const worker = await ds.get<Worker>(WORKER, actor.data.worker_id)
    if (worker?.data.actor_id !== id) return false
  }
  return true
}

/** Where the actors of `ids` run now, and whether each worker is in the actor's pool and has its snapshot hot. */
async function placement(ids: readonly string[]): Promise<Placement[]> {
  const out: Placement[] = []
  for (const id of ids) {
    const actor = (await ds.get<Actor>(ACTOR, id)) as DataspaceRecord<Actor>
    const worker = (await ds.get<Worker>(WORKER, actor.data.worker_id)) as DataspaceRecord<Worker>
    out.push({
      id,
      pool: actor.data.pool,
      snapshot: actor.data.snapshot,
      worker: worker.id,
      workerPool: worker.data.pool,
      node: worker.data.node_name,
      hot: worker.data.cached_snapshots.includes(actor.data.snapshot),
      scheduler: actor.data.scheduler ?? '',
    })
  }
  return out
}

interface Placement {
  readonly id: string
  readonly pool: string
  readonly snapshot: string
  readonly worker: string
  readonly workerPool: string
  readonly node: string
  readonly hot: boolean
  readonly scheduler: string
}

function show(placements: readonly Placement[]): void {
  for (const p of placements) {
    console.log(
      `  ${p.id.padEnd(9)} ${p.pool.padEnd(5)} ${p.snapshot.padEnd(16)} → ${p.worker} (${p.node}, ` +
        `${p.hot ? 'snapshot hot' : 'cold start'}) by ${p.scheduler}`,
    )
  }
}

const tsx = (file: string, ...args: string[]): ChildProcess =>
  spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL(file, import.meta.url)), ...args],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )

// Whatever happens (a timeout, an error, SIGTERM), no child outlives this process, and the
// servers close (a cluster's schema is dropped), within 5 s at most.
const children: ChildProcess[] = []
const killChildren = (): void => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
}
process.on('exit', killChildren)
let aborted = false
const abort = (error?: unknown): void => {
  // Once aborting, what fails next is the run being cut short (a closed dataspace): not news.
  if (aborted) return
  aborted = true
  if (error !== undefined) console.error(error)
  workers.close()
  killChildren()
  const exit = (): never => process.exit(1)
  setTimeout(exit, 5_000).unref()
  servers.close().then(exit, exit)
}
process.once('SIGTERM', () => abort())
process.on('uncaughtException', abort)

const nodes = NODES.map((node, i) =>
  tsx('node.ts', serverUrl(i), node, JSON.stringify(workersOf(i + 1))),
)
children.push(...nodes)
await waitFor(`${WORKERS} workers`, async () => (await ds.list(WORKER)).items.length === WORKERS)
const schedulers = SCHEDULERS.map((name, i) => tsx('scheduler.ts', serverUrl(i), name))
children.push(...schedulers)
await waitFor('3 schedulers', async () => (await ds.groups().members('schedulers')).length === 3)

const waves: Placement[][] = []
for (const [n, wave] of WAVES.entries()) {
  const ids = wave.map(([id]) => id)
  // One commit per wave: every scheduler sees the whole wave at once and they race for it.
  await controller.transact({
    then: wave.map(([id, pool, snapshot]) => ({
      op: 'assert' as const,
      kind: ACTOR,
      id,
      data: { pool, snapshot, status: 'pending', worker_id: '' } satisfies Actor,
      owner: null,
    })),
  })
  await waitFor(`wave ${n + 1}`, () => placed(ids))
  waves.push(await placement(ids))
  const hot = waves[n]?.filter((p) => p.hot).length
  console.log(`wave ${n + 1}: ${wave.length} actors placed, ${hot} with the snapshot hot:`)
  show(waves[n] ?? [])
}

// Kill the node running the most actors: nobody tells the server, the workers' leases run out.
const allActors = WAVES.flat().map(([id]) => id)
const before = (await ds.list<Actor>(ACTOR)).items
const perNode = new Map<string, number>()
for (const actor of before) {
  const worker = await ds.get<Worker>(WORKER, actor.data.worker_id)
  if (worker !== undefined)
    perNode.set(worker.data.node_name, (perNode.get(worker.data.node_name) ?? 0) + 1)
}
const victim =
  [...perNode].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] ?? 'node-1'
const victimWorkers = new Set(
  (await ds.list(WORKER, { fields: { node_name: victim } })).items.map((w) => w.id),
)
const lost = before.filter((actor) => victimWorkers.has(actor.data.worker_id))
console.log(`killing ${victim} (SIGKILL), which runs ${lost.map((a) => a.id).join(', ')}`)
nodes[NODES.indexOf(victim)]?.kill('SIGKILL')
await waitFor(`the workers of ${victim} to disappear`, async () => {
  const { items } = await ds.list(WORKER, { fields: { node_name: victim } })
  return items.length === 0
})
await waitFor(
  'every lost actor to be requeued and placed again',
  async () => lost.every((actor) => requeued.includes(actor.id)) && (await placed(allActors)),
)

const final = await placement(allActors)
// The referee may be a little behind the reads above (in a cluster, its node applies other nodes'
// commits when the doorbell rings): let it see the final placement before it reports.
await waitFor('the referee to see the final placement', async () =>
  final.every((p) => holder.get(p.id) === p.worker),
)
console.log('after the kill:')
show(final.filter((p) => requeued.includes(p.id)))
const liveWorkers = (await ds.list<Worker>(WORKER)).items.map((w) => w.id)
console.log(
  `${assignments} assignments for ${allActors.length} actors, ${requeued.length} requeued, ` +
    `${violations.length} violations (a worker with two actors, an actor on two workers)`,
)
console.log(
  `RESULT ${JSON.stringify({ waves, final, violations, assignments, requeued, victim, lost: lost.map((a) => a.id), liveWorkers })}`,
)

// Stop refereeing first: the graceful shutdown below retracts every worker.
workers.close()
for (const child of [...schedulers, ...nodes]) {
  if (child.exitCode !== null || child.signalCode !== null) continue
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
await servers.close()
