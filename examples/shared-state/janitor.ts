import type { DataspaceApi, Process } from '../../src/index.js'
import { REQUEUED_KEY, updateWithRetry } from './counters.js'
import type { Counters, RetryOptions } from './counters.js'
import { AGENT_KIND, isRegistered } from './registry.js'
import type { AgentData } from './registry.js'
import { requeueOp, TASK_KIND } from './task-queue.js'
import type { TaskData, TaskQueue } from './task-queue.js'

/** What the janitor needs. */
export interface JanitorContext {
  readonly ds: DataspaceApi
  readonly queue: TaskQueue
  readonly counters: Counters
  /** Passed to every compare-and-swap loop (to count conflicts). */
  readonly retry?: RetryOptions
  /** Called after each re-queue commit. */
  readonly onRequeue?: (taskId: string, deadPid: string) => void
}

/**
 * Starts the janitor: the process that gives a dead worker's tasks back to the queue — what a
 * poisoned `Mutex` recovery (`poisoned.into_inner()`) tries to do in the ADR, but driven by
 * state, not by catching the panic.
 *
 * Tasks stay owned by the producer, so a crashed worker's task is not lost: it sits `taken` by a
 * pid that no longer has an agent record. The janitor watches `agent` records; a retraction with
 * reason `owner-exit` names the dead pid, and each of its tasks is re-queued in one commit with
 * the `tasks.requeued` counter. On the watch's first snapshot, and after a `reset` (it fell
 * behind and may have missed retractions), it sweeps instead: every taken task whose worker is
 * not registered is re-queued. The sweep makes it level-triggered, so a janitor started late,
 * restarted, or lagging still re-queues everything; the conditional claim in `requeueOp` makes
 * each re-queue safe to repeat.
 */
export function startJanitor(ctx: JanitorContext): Process {
  return ctx.ds.spawn('janitor', async (proc, signal) => {
    const watch = ctx.ds.watch<AgentData>(AGENT_KIND, { signal })
    for await (const event of watch) {
      switch (event.type) {
        case 'snapshot':
          await sweep(ctx, proc)
          break
        case 'retracted':
          if (event.reason === 'owner-exit' && event.record.owner !== null) {
            await requeueAll(ctx, proc, event.record.owner)
          }
          break
        case 'asserted':
        case 'reset': // a snapshot follows, and the sweep catches up
        case 'message':
          break
        default:
          event satisfies never
      }
    }
  })
}

/** Re-queues every taken task whose worker has no agent record (is not alive). */
async function sweep(ctx: JanitorContext, proc: Process): Promise<void> {
  const { items } = await ctx.ds.list<TaskData>(TASK_KIND, { fields: 'state=taken' })
  const workers = new Set(items.map((task) => task.data.worker))
  for (const pid of workers) {
    if (!(await isRegistered(ctx.ds, pid))) await requeueAll(ctx, proc, pid)
  }
}

async function requeueAll(ctx: JanitorContext, proc: Process, deadPid: string): Promise<void> {
  for (const task of await ctx.queue.takenBy(deadPid)) {
    if (await requeue(ctx, proc, task.id, deadPid)) ctx.onRequeue?.(task.id, deadPid)
  }
}

/** `taken by deadPid → queued` and `tasks.requeued += 1` in one commit; false if not held any more. */
function requeue(
  ctx: JanitorContext,
  proc: Process,
  taskId: string,
  deadPid: string,
): Promise<boolean> {
  return updateWithRetry(async () => {
    if (!(await ctx.queue.isHeldBy(taskId, deadPid))) return false
    const bump = await ctx.counters.increment(REQUEUED_KEY)
    await proc.transact({ if: [bump.condition], then: [requeueOp(taskId, deadPid), bump.op] })
    return true
  }, ctx.retry)
}
