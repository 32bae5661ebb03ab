import type { DataspaceApi, ExitReason, Process } from '../../src/index.js'
import { Chaos } from './chaos.js'
import { Counters, defineMetricKind, DONE_KEY, kvIncrement, REQUEUED_KEY } from './counters.js'
import { startJanitor } from './janitor.js'
import { defineAgentKind, findAgents } from './registry.js'
import type { AgentSpec } from './registry.js'
import { WorkerPool } from './supervisor.js'
import { defineTaskKind, TaskQueue } from './task-queue.js'
import type { TaskState } from './task-queue.js'
import { agentWorker } from './worker.js'
import type { RunStats, WorkerContext, WorkerHooks } from './worker.js'

/** Everything a caller (a test) may observe during a run. */
export interface RunHooks extends WorkerHooks {
  readonly onSpawn?: (proc: Process, spec: AgentSpec) => void
  readonly onExit?: (proc: Process, reason: ExitReason) => void
  readonly onRequeue?: (taskId: string, deadPid: string) => void
}

/** Options of {@link runSharedState}. */
export interface SharedStateOptions {
  readonly tasks: number
  /** Concurrent worker processes. */
  readonly workers: number
  readonly seed: number
  /** Probability that a yield point gives up the turn (default 0.3). */
  readonly yieldRate?: number
  /** Probability that a crash point throws (default 0). */
  readonly crashRate?: number
  /** Tasks per enqueue commit (default 50). */
  readonly batchSize?: number
  /** The producer waits while this many tasks are queued (default 200, at least `batchSize`). */
  readonly maxQueued?: number
  readonly maxRestarts?: number
  readonly hooks?: RunHooks
}

/** What a run did, read back from the dataspace after it. */
export interface SharedStateSummary {
  readonly seed: number
  readonly tasks: number
  readonly workers: number
  /** The `tasks.done` counter. */
  readonly done: number
  /** The `tasks.requeued` counter. */
  readonly requeued: number
  /** `worker.<name>.done` counters, by agent name. */
  readonly perWorker: Readonly<Record<string, number>>
  /** Task records by state. */
  readonly states: Readonly<Record<TaskState, number>>
  /** Worker processes spawned, restarts included. */
  readonly spawned: number
  readonly crashes: number
  /** Compare-and-swap attempts that lost a race and were retried. */
  readonly conflicts: number
  /** The `agents.started` KV counter (bumped by each worker as it starts). */
  readonly agentsStarted: number
  /** The `agents.crashed` KV counter (bumped by the supervisor). */
  readonly agentsCrashed: number
  /** Agents still in the registry after every worker exited (0: they clean up by existing). */
  readonly registered: number
  readonly revision: number
  readonly elapsedMs: number
}

/** Declares the example's kinds. Idempotent. */
export async function defineKinds(ds: DataspaceApi): Promise<void> {
  await defineAgentKind(ds)
  await defineTaskKind(ds)
  await defineMetricKind(ds)
}

/** The agent in pool slot `slot`: every fourth on a GPU; all summarise, some do more. */
export function agentSpec(slot: number): AgentSpec {
  const gpu = slot % 4 === 0
  return {
    name: `agent-${String(slot).padStart(2, '0')}`,
    tier: gpu ? 'gpu' : 'cpu',
    capabilities: gpu
      ? ['summarise', 'embed']
      : slot % 2 === 1
        ? ['summarise', 'translate']
        : ['summarise'],
  }
}

/**
 * Runs the application of ADR-026 on a dataspace: a producer enqueues `tasks` tasks in batches
 * while `workers` agents take and complete them, a supervisor replaces crashed workers and a
 * janitor re-queues what they held. Resolves once every task is done and every worker has
 * exited. The producer and the `metrics` process stay alive, so the caller can inspect the tasks
 * and counters; closing the dataspace ends them.
 */
export async function runSharedState(
  ds: DataspaceApi,
  options: SharedStateOptions,
): Promise<SharedStateSummary> {
  const started = performance.now()
  await defineKinds(ds)
  const counters = new Counters(ds)
  await counters.ensure([DONE_KEY, REQUEUED_KEY])
  const queue = new TaskQueue(ds, ds.process('producer'))
  const chaos = new Chaos({
    seed: options.seed,
    yieldRate: options.yieldRate ?? 0.3,
    crashRate: options.crashRate ?? 0,
  })
  const stop = new AbortController()
  const stats: RunStats = { conflicts: 0 }
  const hooks = options.hooks ?? {}
  const retry = { onConflict: () => void stats.conflicts++ }
  const bookkeeping: Promise<unknown>[] = []
  const janitor = startJanitor({
    ds,
    queue,
    counters,
    retry,
    ...(hooks.onRequeue === undefined ? {} : { onRequeue: hooks.onRequeue }),
  })
  const ctx: WorkerContext = { ds, queue, counters, chaos, stop: stop.signal, stats, hooks }
  const pool = new WorkerPool({
    ds,
    size: options.workers,
    spec: agentSpec,
    worker: (spec) => agentWorker(ctx, spec),
    stop: stop.signal,
    ...(options.maxRestarts === undefined ? {} : { maxRestarts: options.maxRestarts }),
    ...(hooks.onSpawn === undefined ? {} : { onSpawn: hooks.onSpawn }),
    onExit: (proc, reason) => {
      hooks.onExit?.(proc, reason)
      // A supervisor is plain code, not a process: a KV put needs no process handle.
      if (typeof reason !== 'string')
        bookkeeping.push(kvIncrement(ds.kv('metrics'), 'agents.crashed', 1, retry))
    },
  }).start()
  try {
    const batch = options.batchSize ?? 50
    const maxQueued = Math.max(options.maxQueued ?? 200, batch)
    const finished = produce(queue, chaos, options.tasks, batch, maxQueued, stop.signal)
      .then(() => queue.drained(stop.signal))
      .then(
        () => 'drained' as const,
        // Once the race is decided `stop` aborts this chain; only an earlier failure is news.
        (error: unknown) => `the producer failed: ${String(error)}`,
      )
    const outcome = await Promise.race([
      finished,
      pool.exhausted.then(() => 'every worker crashed and restarts ran out' as const),
      janitor.exited.then((reason) => `the janitor exited: ${describeExit(reason)}`),
    ])
    if (outcome !== 'drained') throw new Error(`the run did not finish: ${outcome}`)
  } finally {
    stop.abort()
    await pool.stopped()
    await janitor.exit()
    await Promise.all(bookkeeping)
  }
  const perWorker = Object.fromEntries(
    [...(await counters.snapshot('worker.'))].map(([key, value]) => [
      key.slice('worker.'.length, -'.done'.length),
      value,
    ]),
  )
  return {
    seed: options.seed,
    tasks: options.tasks,
    workers: options.workers,
    done: await counters.read(DONE_KEY),
    requeued: await counters.read(REQUEUED_KEY),
    perWorker,
    states: await queue.counts(),
    spawned: pool.spawned.length,
    crashes: pool.crashes,
    conflicts: stats.conflicts,
    agentsStarted: Number((await ds.kv('metrics').get('agents.started'))?.value ?? 0),
    agentsCrashed: Number((await ds.kv('metrics').get('agents.crashed'))?.value ?? 0),
    registered: (await findAgents(ds)).length,
    revision: ds.revision,
    elapsedMs: Math.round(performance.now() - started),
  }
}

/**
 * The producer's job: enqueue `total` tasks, `batchSize` per commit, while workers already run,
 * never letting more than `maxQueued` wait (backpressure by watching the queue, no semaphore).
 */
async function produce(
  queue: TaskQueue,
  chaos: Chaos,
  total: number,
  batchSize: number,
  maxQueued: number,
  signal: AbortSignal,
): Promise<void> {
  for (let first = 1; first <= total; first += batchSize) {
    const count = Math.min(batchSize, total - first + 1)
    await queue.queuedAtMost(maxQueued - count, signal)
    const payloads = Array.from({ length: count }, (_, i) => ({
      document: first + i,
      text: `document ${first + i}: shared state without locks`,
    }))
    await queue.enqueue(payloads)
    await chaos.maybeYield()
  }
}

/** An exit reason for humans. */
export function describeExit(reason: ExitReason): string {
  if (typeof reason === 'string') return reason
  return reason.error instanceof Error ? reason.error.message : String(reason.error)
}
