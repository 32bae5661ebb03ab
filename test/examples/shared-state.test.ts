// The shared-state example (ADR-026's agent registry, task queue and metrics, without locks)
// under contention and crashes. Seeded: the seed is printed, and SEED=<n> replays a run.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, NotOwner } from '../../src/index.js'
import type { DataspaceApi, ExitReason, Process } from '../../src/index.js'
import { defineKinds, runSharedState } from '../../examples/shared-state/app.js'
import type { RunHooks, SharedStateSummary } from '../../examples/shared-state/app.js'
import { Chaos, seedFrom } from '../../examples/shared-state/chaos.js'
import {
  Counters,
  DONE_KEY,
  kvIncrement,
  REQUEUED_KEY,
  workerDoneKey,
} from '../../examples/shared-state/counters.js'
import { startJanitor } from '../../examples/shared-state/janitor.js'
import { findAgents, isRegistered, registerAgent } from '../../examples/shared-state/registry.js'
import { TASK_KIND, TaskQueue } from '../../examples/shared-state/task-queue.js'
import type { TaskData } from '../../examples/shared-state/task-queue.js'
import { agentWorker } from '../../examples/shared-state/worker.js'

const SEED = seedFrom(process.env['SEED'])
console.log(`shared-state seed: ${SEED} (replay with SEED=${SEED})`)

/** ~3 % of crash points throw; the janitor must hand on every task a crashed worker held. */
const NORMAL = { tasks: 500, workers: 12, crashRate: 0.03, yieldRate: 0.3 }
/** Many more workers, and most awaits give up the turn: contention on every counter. */
const STRESS = { tasks: 1500, workers: 48, crashRate: 0.01, yieldRate: 0.8 }

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Runs `body` on a fresh dataspace with the example's kinds, and always closes it. */
async function withDataspace(body: (ds: DataspaceApi) => Promise<void>): Promise<void> {
  const ds = createDataspace()
  try {
    await defineKinds(ds)
    await body(ds)
  } finally {
    await ds.close()
  }
}

/**
 * What the test sees of a run, recorded from the hooks: who took and completed what, who
 * crashed holding what, and every moment the registry listed an agent whose process was gone.
 */
class RunLog {
  readonly completions = new Map<string, string[]>() // pid → task ids, in order
  readonly agentOf = new Map<string, string>() // pid → agent name
  readonly processes = new Map<string, Process>()
  readonly holders = new Map<string, string>() // task id → pid holding it now
  readonly violations: string[] = []
  readonly exitChecks: Promise<void>[] = []
  takes = 0
  crashedHolding = 0
  requeues = 0
  audits = 0

  constructor(readonly ds: DataspaceApi) {}

  readonly hooks: RunHooks = {
    onSpawn: (proc, spec) => {
      this.processes.set(proc.id, proc)
      this.agentOf.set(proc.id, spec.name)
    },
    onTake: (task, pid) => {
      this.takes++
      const holder = this.holders.get(task.id)
      if (holder !== undefined)
        this.violations.push(`${task.id} taken by ${pid} while ${holder} holds it`)
      this.holders.set(task.id, pid)
    },
    onComplete: (task, pid) => {
      if (this.holders.get(task.id) !== pid)
        this.violations.push(`${pid} completed ${task.id} without holding it`)
      this.holders.delete(task.id)
      const list = this.completions.get(pid) ?? []
      list.push(task.id)
      this.completions.set(pid, list)
    },
    onCrash: (pid, task) => {
      if (task === undefined) return
      this.crashedHolding++
      this.holders.delete(task.id) // the janitor hands it on once the exit commit is done
    },
    onRequeue: () => void this.requeues++,
    onExit: (proc, reason) => this.exitChecks.push(this.#checkGone(proc, reason)),
  }

  /** `exited` resolves after the exit commit: the registry must not list the agent any more. */
  async #checkGone(proc: Process, reason: ExitReason): Promise<void> {
    const mine = await findAgents(this.ds, {})
    if (mine.some((agent) => agent.owner === proc.id))
      this.violations.push(`exited ${proc.id} (${JSON.stringify(reason)}) still registered`)
  }

  /** Lists the registry at every other turn until `signal` aborts; every owner must be alive. */
  async audit(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const agent of await findAgents(this.ds)) {
        const owner = agent.owner === null ? undefined : this.processes.get(agent.owner)
        if (owner?.alive !== true)
          this.violations.push(`registry lists ${agent.id} of exited ${agent.owner}`)
      }
      this.audits++
      await turn()
    }
  }
}

/** A whole run with the registry audited throughout; then every guarantee is checked. */
async function runAndCheck(ds: DataspaceApi, options: typeof NORMAL): Promise<SharedStateSummary> {
  const log = new RunLog(ds)
  const stopAudit = new AbortController()
  const auditing = log.audit(stopAudit.signal)
  let summary: SharedStateSummary
  try {
    summary = await runSharedState(ds, { seed: SEED, ...options, hooks: log.hooks })
  } finally {
    stopAudit.abort()
    await auditing
    await Promise.all(log.exitChecks)
  }
  await assertExact(ds, log, summary)
  return summary
}

/** The checks of the exactly-once guarantee, shared by the normal and the stress run. */
async function assertExact(
  ds: DataspaceApi,
  log: RunLog,
  summary: SharedStateSummary,
): Promise<void> {
  const total = summary.tasks
  const why = `seed ${SEED}`
  assert.deepEqual(log.violations, [], why)

  // Every task completed exactly once: the multiset of completions is exactly the task ids.
  const completed = [...log.completions.values()].flat().sort()
  const ids = Array.from({ length: total }, (_, i) => `task-${String(i + 1).padStart(6, '0')}`)
  assert.deepEqual(completed, ids, `every task completed exactly once (${why})`)
  const { items } = await ds.list<TaskData>(TASK_KIND)
  assert.equal(items.length, total)
  const byId = new Map(items.map((task) => [task.id, task.data]))
  for (const [pid, taskIds] of log.completions) {
    for (const id of taskIds)
      assert.deepEqual(byId.get(id), { ...byId.get(id), state: 'done', worker: pid })
  }

  // Counters are exact: the total, and per agent name (summed over its restarts).
  assert.equal(summary.done, total, why)
  assert.deepEqual(summary.states, { queued: 0, taken: 0, done: total })
  const expected = new Map<string, number>()
  for (const [pid, taskIds] of log.completions) {
    const name = log.agentOf.get(pid) as string
    expected.set(name, (expected.get(name) ?? 0) + taskIds.length)
  }
  for (const [name, count] of Object.entries(summary.perWorker))
    assert.equal(count, expected.get(name) ?? 0, `${workerDoneKey(name)} (${why})`)
  assert.equal(
    Object.values(summary.perWorker).reduce((a, b) => a + b, 0),
    total,
  )

  // Crashed workers lost nothing: each task they held was re-queued once and taken again.
  assert.ok(log.crashedHolding > 0, `the run should crash some workers mid-task (${why})`)
  assert.equal(summary.requeued, log.crashedHolding, why)
  assert.equal(log.requeues, log.crashedHolding, why)
  assert.equal(log.takes, total + summary.requeued, why)
  assert.equal(summary.spawned, summary.workers + summary.crashes, why)
  assert.equal(summary.agentsStarted, summary.spawned)
  assert.equal(summary.agentsCrashed, summary.crashes)

  // The registry never listed an exited agent, and is empty now that every worker is gone.
  assert.ok(log.audits > 10, `the auditor ran (${log.audits} audits)`)
  assert.equal(summary.registered, 0)
}

describe('shared-state example', () => {
  it('500 tasks, 12 crashing workers: done exactly once', { timeout: 20_000 }, () =>
    withDataspace(async (ds) => {
      const summary = await runAndCheck(ds, NORMAL)
      console.log(`  run: ${JSON.stringify({ ...summary, perWorker: undefined })}`)
    }),
  )

  it('stress: 48 workers yielding at random, still exact', { timeout: 30_000 }, () =>
    withDataspace(async (ds) => {
      const summary = await runAndCheck(ds, STRESS)
      console.log(
        `  stress: ${summary.conflicts} CAS retries, ${summary.crashes} crashes, ${summary.elapsedMs} ms`,
      )
      assert.ok(summary.conflicts > 0, 'contention should make some compare-and-swaps retry')
    }),
  )

  it("a crashed worker's task goes back to the head of the queue", { timeout: 5000 }, () =>
    withDataspace(async (ds) => {
      const counters = new Counters(ds)
      await counters.ensure([DONE_KEY, REQUEUED_KEY])
      const queue = new TaskQueue(ds, ds.process('producer'))
      const [first] = await queue.enqueue([{ n: 1 }, { n: 2 }])
      const requeued: [string, string][] = []
      const onRequeue = (id: string, pid: string): void => void requeued.push([id, pid])
      const janitor = startJanitor({ ds, queue, counters, onRequeue })
      const stop = new AbortController()
      const base = { ds, queue, counters, stop: stop.signal, stats: { conflicts: 0 } }
      // crashRate 1: the first crash point, in the middle of the first task, always throws.
      const worker = (name: string, crashRate: number): Process =>
        ds.spawn(
          name,
          agentWorker(
            { ...base, chaos: new Chaos({ seed: SEED, crashRate }) },
            { name, capabilities: ['summarise'], tier: 'cpu' },
          ),
        )

      const doomed = worker('doomed', 1)
      const reason = (await doomed.exited) as { error: unknown }
      assert.match(String(reason.error), /injected crash in the middle of task-000001/)
      while (requeued.length === 0) await turn()
      assert.deepEqual(requeued, [['task-000001', doomed.id]])
      const task = await ds.get<TaskData>(TASK_KIND, 'task-000001')
      assert.deepEqual(task?.data, { payload: { n: 1 }, state: 'queued', worker: '' })
      assert.equal(task.createdRevision, first?.createdRevision, 'keeps its place: FIFO head')
      assert.equal(task.owner, queue.producer, 'the producer still owns it')

      const healthy = worker('healthy', 0)
      await queue.drained()
      stop.abort()
      assert.equal(await healthy.exited, 'normal')
      const done = await ds.get<TaskData>(TASK_KIND, 'task-000001')
      assert.deepEqual([done?.data.state, done?.data.worker], ['done', healthy.id])
      assert.deepEqual([await counters.read(REQUEUED_KEY), await counters.read(DONE_KEY)], [1, 2])
      await janitor.exit()
    }),
  )

  it('registry: selector lookups, unique names, an exited agent vanishes', () =>
    withDataspace(async (ds) => {
      const gpu = ds.process('gpu')
      const impostor = ds.process('impostor')
      const spec = { name: 'a-gpu', capabilities: ['summarise', 'embed'], tier: 'gpu' } as const
      const gpuAgent = await registerAgent(gpu, spec)
      await registerAgent(ds.process('cpu'), {
        name: 'a-cpu',
        capabilities: ['summarise'],
        tier: 'cpu',
      })
      const ids = async (fields: string, labels = ''): Promise<string[]> =>
        (await findAgents(ds, { fields, labels })).map((agent) => agent.id)
      assert.deepEqual(await ids('status=idle,capabilities=summarise'), ['a-cpu', 'a-gpu'])
      assert.deepEqual(await ids('status=idle,capabilities=summarise', 'tier in (gpu)'), ['a-gpu'])
      assert.deepEqual(await ids('capabilities=embed'), ['a-gpu'])
      const plan = await ds.explain('agent', { fields: 'status=idle,capabilities=embed' })
      assert.equal(plan.scanned, 'index')
      await gpuAgent.setStatus('busy')
      assert.deepEqual(await ids('status=idle'), ['a-cpu'])
      // Only the owner writes an agent's record: a second "a-gpu" is refused while the first lives.
      await assert.rejects(registerAgent(impostor, spec), NotOwner)
      await gpu.exit()
      assert.deepEqual(await ids('capabilities=summarise'), ['a-cpu'])
      assert.equal(await isRegistered(ds, gpu.id), false)
      await registerAgent(impostor, spec) // the name is free again
    }))

  it('updateWithRetry: counters are exact under contention (KV and records)', () =>
    withDataspace(async (ds) => {
      const chaos = new Chaos({ seed: SEED, yieldRate: 0.5 })
      const kv = ds.kv('metrics')
      const counters = new Counters(ds)
      await counters.ensure(['hits'])
      let conflicts = 0
      const onConflict = (): void => void conflicts++
      const writers = Array.from({ length: 20 }, (_, i) =>
        ds.spawn(`writer-${i}`, async (proc) => {
          for (let n = 0; n < 25; n++) {
            await kvIncrement(kv, 'hits', 1, { onConflict })
            await chaos.maybeYield()
            await counters.add(proc, 'hits', 1, { onConflict })
          }
        }),
      )
      const reasons = await Promise.all(writers.map((writer) => writer.exited))
      assert.deepEqual(new Set(reasons), new Set(['normal']))
      assert.deepEqual([(await kv.get('hits'))?.value, await counters.read('hits')], [500, 500])
      assert.ok(conflicts > 0, 'the writers should have raced')
    }))

  it('the producer owns the queue: its tasks go when it goes', () =>
    withDataspace(async (ds) => {
      const queue = new TaskQueue(ds, ds.process('producer'))
      await queue.enqueue([{ n: 1 }, { n: 2 }, { n: 3 }])
      const watch = ds.watch(TASK_KIND, { snapshot: false })
      await queue.close()
      const { value } = await watch.next()
      assert.deepEqual(value?.type === 'retracted' && value.reason, 'owner-exit')
      assert.deepEqual((await ds.list(TASK_KIND)).items, [])
      watch.close()
    }))
})
