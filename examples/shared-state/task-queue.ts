import { z } from 'zod'
import type { DataspaceApi, DataspaceRecord, Json, Op, Process, Watch } from '../../src/index.js'

/**
 * The task queue — the ADR's `Arc<Mutex<Vec<Task>>>` — as records of kind `task`. There is no
 * queue object to lock: "dequeue" is a `claim`, which picks the oldest queued task and marks it
 * taken in one commit, re-checking the selector inside that commit, so two workers can never take
 * the same task. A task leaves the `queued` state but never the store, so it cannot be lost in
 * transit between a pop and a crash.
 */
export const TASK_KIND = 'task'

/** A task's life: `queued → taken → done`, and `taken → queued` when its worker dies. */
export const TASK_STATES = ['queued', 'taken', 'done'] as const

/** One of {@link TASK_STATES}. */
export type TaskState = (typeof TASK_STATES)[number]

const taskSchema = z.object({
  payload: z.json(),
  state: z.enum(TASK_STATES),
  /** The pid that holds the task while `taken`, and that completed it once `done`; else `''`. */
  worker: z.string(),
})

/** The data of a `task` record. */
export interface TaskData {
  readonly payload: Json
  readonly state: TaskState
  readonly worker: string
}

/** A `task` record as the dataspace hands it out. */
export type TaskRecord = DataspaceRecord<TaskData>

/**
 * Declares the `task` kind: `state` is indexed so taking work is an index lookup; `worker` so the
 * janitor finds a dead worker's tasks without a scan.
 */
export async function defineTaskKind(ds: Pick<DataspaceApi, 'defineKind'>): Promise<void> {
  await ds.defineKind(TASK_KIND, { schema: taskSchema, indexes: ['state', 'worker'] })
}

/**
 * The claim that takes the oldest queued task for `worker` (FIFO by `createdRevision`, which a
 * re-queued task keeps: it goes back to the head, where it was). Ownership is left with the
 * producer on purpose — see the README: a task owned by its worker would die with it.
 */
export function takeOp(worker: string): Op {
  return {
    op: 'claim',
    kind: TASK_KIND,
    fields: 'state=queued',
    orderBy: 'createdRevision',
    patch: { state: 'taken', worker },
  }
}

/**
 * Moves task `id` on from `taken by worker`, and only from there: inside a transaction the claim
 * fails with `Conflict` if the task was re-queued or finished meanwhile, so a worker that lost a
 * task can never complete it, and the janitor can never re-queue a task that was completed.
 */
function moveOp(id: string, worker: string, patch: Partial<TaskData>): Op {
  // The map form is exact match and needs no escaping of the "/" and "#" in pids.
  return { op: 'claim', kind: TASK_KIND, id, fields: { state: 'taken', worker }, patch }
}

/** `taken by worker → done`; the `worker` field stays, recording who completed it. */
export function completeOp(id: string, worker: string): Op {
  return moveOp(id, worker, { state: 'done' })
}

/** `taken by worker → queued` (what the janitor does for a worker that died holding it). */
export function requeueOp(id: string, worker: string): Op {
  return moveOp(id, worker, { state: 'queued', worker: '' })
}

/**
 * The producer's side of the queue, and reads anyone may make. The producer process owns every
 * task it enqueues, so the queue lives as long as the producer does (see the README for why
 * tasks are not ownerless KV entries).
 */
export class TaskQueue {
  readonly #ds: DataspaceApi
  readonly #producer: Process
  #sequence = 0

  constructor(ds: DataspaceApi, producer: Process) {
    this.#ds = ds
    this.#producer = producer
  }

  /** The pid that owns the tasks. */
  get producer(): string {
    return this.#producer.id
  }

  /** Enqueues `payloads` in ONE commit, in order; ids are `task-000001`, … */
  async enqueue(payloads: readonly Json[]): Promise<readonly TaskRecord[]> {
    const then: Op[] = payloads.map((payload) => ({
      op: 'assert',
      kind: TASK_KIND,
      id: `task-${String(++this.#sequence).padStart(6, '0')}`,
      data: { payload, state: 'queued', worker: '' } satisfies TaskData,
    }))
    const { results } = await this.#producer.transact({ then })
    return results as readonly TaskRecord[]
  }

  /** Whether task `id` is currently taken by `pid`. */
  async isHeldBy(id: string, pid: string): Promise<boolean> {
    const task = await this.#ds.get<TaskData>(TASK_KIND, id)
    return task?.data.state === 'taken' && task.data.worker === pid
  }

  /** The tasks `pid` holds. */
  async takenBy(pid: string): Promise<readonly TaskRecord[]> {
    const { items } = await this.#ds.list<TaskData>(TASK_KIND, {
      fields: { state: 'taken', worker: pid },
    })
    return items
  }

  /** How many tasks are in each state, at one revision. */
  async counts(): Promise<Record<TaskState, number>> {
    const { items } = await this.#ds.list<TaskData>(TASK_KIND)
    const counts: Record<TaskState, number> = { queued: 0, taken: 0, done: 0 }
    for (const task of items) counts[task.data.state]++
    return counts
  }

  /**
   * A watch that yields whenever a task becomes queued (enqueued, or re-queued): what an idle
   * worker waits on instead of polling. It closes when `signal` aborts.
   */
  wakeups(signal: AbortSignal): Watch<TaskData> {
    return this.#ds.watch<TaskData>(TASK_KIND, { fields: 'state=queued', snapshot: false, signal })
  }

  /**
   * Resolves once at most `limit` tasks are queued: the producer's backpressure. The queue stays
   * bounded without a semaphore — the producer just watches the queue's length.
   */
  async queuedAtMost(limit: number, signal?: AbortSignal): Promise<void> {
    await this.#until('state=queued', (pending) => pending <= limit, signal)
  }

  /**
   * Resolves once no task is queued or taken. Call it after the last enqueue: an empty queue
   * before the producer starts counts as drained.
   */
  async drained(signal?: AbortSignal): Promise<void> {
    await this.#until('state!=done', (pending) => pending === 0, signal)
  }

  /** Watches the tasks matching `fields` until their number satisfies `done`. */
  async #until(
    fields: string,
    done: (count: number) => boolean,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const pending = new Set<string>()
    const watch = this.#ds.watch<TaskData>(TASK_KIND, {
      fields,
      ...(signal === undefined ? {} : { signal }),
    })
    try {
      for await (const event of watch) {
        switch (event.type) {
          case 'snapshot':
            pending.clear()
            for (const task of event.records) pending.add(task.id)
            break
          case 'asserted':
            pending.add(event.record.id)
            break
          case 'retracted':
            pending.delete(event.record.id)
            break
          case 'reset': // a fresh snapshot follows
          case 'message':
            continue
          default:
            event satisfies never
        }
        if (done(pending.size)) return
      }
      signal?.throwIfAborted()
      throw new Error('the task watch closed first (was the dataspace closed?)')
    } finally {
      watch.close()
    }
  }

  /** Exits the producer: every task it owns is retracted with it. */
  close(): Promise<void> {
    return this.#producer.exit()
  }
}
