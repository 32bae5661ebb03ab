import { Conflict } from '../../src/index.js'
import type { DataspaceApi, Process, ProcessFunction } from '../../src/index.js'
import type { Chaos } from './chaos.js'
import { DONE_KEY, kvIncrement, updateWithRetry, workerDoneKey } from './counters.js'
import type { Counters } from './counters.js'
import { registerAgent } from './registry.js'
import type { Agent, AgentSpec } from './registry.js'
import { completeOp, takeOp } from './task-queue.js'
import type { TaskQueue, TaskRecord } from './task-queue.js'

/** Observers of a worker's life, called synchronously right after the fact (tests record here). */
export interface WorkerHooks {
  /** `pid` took `task` (the commit is done). */
  readonly onTake?: (task: TaskRecord, pid: string) => void
  /** `pid`, registered as `agent`, completed `task` (the commit is done). */
  readonly onComplete?: (task: TaskRecord, pid: string, agent: string) => void
  /** `pid` is about to crash, holding `task` if it has one. */
  readonly onCrash?: (pid: string, task: TaskRecord | undefined) => void
}

/** Counters of the run kept outside the dataspace: how often a compare-and-swap lost a race. */
export interface RunStats {
  conflicts: number
}

/** What every worker shares: handles, not locks. */
export interface WorkerContext {
  readonly ds: DataspaceApi
  readonly queue: TaskQueue
  readonly counters: Counters
  readonly chaos: Chaos
  /** Aborted when the run is over: idle workers return (a normal exit). */
  readonly stop: AbortSignal
  readonly stats: RunStats
  readonly hooks?: WorkerHooks
}

/**
 * The process function of one agent: register, then take → work → complete until the run stops.
 * Every step is one commit, and the process may crash between any two of them: what it held is
 * then either untouched (the task stays `taken` by a dead pid, which the janitor re-queues) or
 * fully done (task, counters and status moved together) — never half.
 */
export function agentWorker(ctx: WorkerContext, spec: AgentSpec): ProcessFunction {
  return async (proc, signal) => {
    // Registered before it takes anything: the janitor reads "no agent record" as "dead".
    const agent = await registerAgent(proc, spec)
    await ctx.counters.ensure([workerDoneKey(spec.name)])
    await kvIncrement(ctx.ds.kv('metrics'), 'agents.started', 1, retryCounted(ctx))
    const wakeups = ctx.queue.wakeups(AbortSignal.any([signal, ctx.stop]))
    try {
      while (!ctx.stop.aborted) {
        await ctx.chaos.maybeYield()
        const task = await take(proc, agent)
        if (task === undefined) {
          // Nothing queued: sleep until something is (new work, or a dead worker's task).
          if ((await wakeups.next()).done === true) break
          continue
        }
        ctx.hooks?.onTake?.(task, proc.id)
        await work(ctx, proc, task)
        if (await complete(ctx, proc, agent, task)) {
          ctx.hooks?.onComplete?.(task, proc.id, agent.name)
        }
        crashPoint(ctx, proc, undefined, 'between tasks')
      }
    } finally {
      wakeups.close()
    }
  }
}

/**
 * Takes the oldest queued task and turns the agent busy in ONE commit: the ADR's nested
 * "registry.write() then queue.lock()", with no lock order to get wrong. The claim is the same
 * as `proc.claim('task', { fields: 'state=queued', orderBy: 'createdRevision', patch })`.
 */
async function take(proc: Process, agent: Agent): Promise<TaskRecord | undefined> {
  try {
    const { results } = await proc.transact({ then: [takeOp(proc.id), agent.statusOp('busy')] })
    return results[0] as TaskRecord
  } catch (error) {
    // No condition and an unconditional assert: the only op that can Conflict is the claim,
    // which inside a transaction fails that way when nothing is queued.
    if (error instanceof Conflict) return undefined
    throw error
  }
}

/** The "work": a few turns given up, as real I/O would, and a chance to crash holding the task. */
async function work(ctx: WorkerContext, proc: Process, task: TaskRecord): Promise<void> {
  await ctx.chaos.maybeYield()
  crashPoint(ctx, proc, task, `in the middle of ${task.id}`)
  await ctx.chaos.maybeYield()
}

/**
 * Marks the task done, bumps the total and this agent's count, and turns the agent idle — ONE
 * commit, guarded by the counters' revisions. A lost race (`Conflict`) re-reads and retries. It
 * returns false if the task is no longer ours (re-queued behind our back), without counting it.
 */
function complete(
  ctx: WorkerContext,
  proc: Process,
  agent: Agent,
  task: TaskRecord,
): Promise<boolean> {
  return updateWithRetry(async () => {
    if (!(await ctx.queue.isHeldBy(task.id, proc.id))) return false
    const total = await ctx.counters.increment(DONE_KEY)
    // The window between read and write, where other workers commit: the retry loop's reason.
    await ctx.chaos.maybeYield()
    const mine = await ctx.counters.increment(workerDoneKey(agent.name))
    await proc.transact({
      if: [total.condition, mine.condition],
      then: [completeOp(task.id, proc.id), total.op, mine.op, agent.statusOp('idle')],
    })
    return true
  }, retryCounted(ctx))
}

function crashPoint(
  ctx: WorkerContext,
  proc: Process,
  task: TaskRecord | undefined,
  where: string,
): void {
  try {
    ctx.chaos.maybeCrash(where)
  } catch (error) {
    ctx.hooks?.onCrash?.(proc.id, task)
    throw error
  }
}

function retryCounted(ctx: WorkerContext): { onConflict: () => void } {
  return {
    onConflict: () => {
      ctx.stats.conflicts++
    },
  }
}
