/**
 * The runnable demo: `npx tsx examples/shared-state/main.ts [--stress]`.
 *
 * First a short registry tour (selector lookups, an agent vanishing when its process exits),
 * then the whole application: a producer, a pool of agent workers that crash now and then, a
 * janitor and exact counters, on one dataspace with no locks. `--stress` runs many more workers
 * with frequent random yields. Environment: `SEED` (replay a run), `TASKS`, `WORKERS`.
 */
import { createDataspace } from '../../src/index.js'
import type { DataspaceApi } from '../../src/index.js'
import { seedFrom } from './chaos.js'
import { defineKinds, runSharedState } from './app.js'
import type { SharedStateSummary } from './app.js'
import { AGENT_KIND, findAgents, registerAgent } from './registry.js'

async function registryTour(ds: DataspaceApi): Promise<void> {
  const gpu = ds.process('tour-gpu')
  const cpu = ds.process('tour-cpu')
  await registerAgent(gpu, { name: 'tour-gpu', capabilities: ['summarise', 'embed'], tier: 'gpu' })
  await registerAgent(cpu, { name: 'tour-cpu', capabilities: ['summarise'], tier: 'cpu' })
  const query = { fields: 'status=idle,capabilities=summarise', labels: 'tier in (gpu)' }
  const names = async (): Promise<string> =>
    (await findAgents(ds, query)).map((agent) => agent.id).join(', ') || '(none)'
  const plan = await ds.explain(AGENT_KIND, query)
  console.log(`registry: idle summarisers on gpu → ${await names()}  [index ${plan.index}]`)
  await gpu.exit()
  console.log(`registry: after tour-gpu exits       → ${await names()}`)
  await cpu.exit()
}

function report(label: string, s: SharedStateSummary): void {
  const perWorker = Object.values(s.perWorker).reduce((sum, n) => sum + n, 0)
  console.log(`${label}: seed ${s.seed} (replay with SEED=${s.seed})`)
  console.log(
    `  tasks ${s.tasks}: done ${s.done} (task records: ${s.states.done} done, ${s.states.queued} queued, ${s.states.taken} taken)`,
  )
  console.log(
    `  workers ${s.workers}: ${s.spawned} processes spawned, ${s.crashes} crashed, ${s.requeued} task(s) re-queued by the janitor`,
  )
  console.log(
    `  counters: per-worker sum ${perWorker}, ${s.conflicts} CAS retries, agents.started ${s.agentsStarted}, agents.crashed ${s.agentsCrashed}`,
  )
  console.log(
    `  registry after the run: ${s.registered} agent(s); revision ${s.revision}; ${s.elapsedMs} ms`,
  )
}

function integer(name: string, fallback: number): number {
  const raw = process.env[name]
  const value = raw === undefined || raw === '' ? fallback : Number(raw)
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer`)
  return value
}

async function main(): Promise<void> {
  const stress = process.argv.includes('--stress')
  const seed = seedFrom(process.env['SEED'])
  const ds = createDataspace()
  try {
    await defineKinds(ds)
    await registryTour(ds)
    const summary = await runSharedState(ds, {
      seed,
      tasks: integer('TASKS', stress ? 5000 : 500),
      workers: integer('WORKERS', stress ? 64 : 8),
      yieldRate: stress ? 0.7 : 0.3,
      crashRate: stress ? 0.005 : 0.01,
    })
    report(stress ? 'stress run' : 'run', summary)
    const exact = summary.done === summary.tasks && summary.states.done === summary.tasks
    if (!exact || summary.registered !== 0) throw new Error('the run was not exact')
  } finally {
    await ds.close()
  }
}

main().catch((error: unknown) => {
  console.error('shared-state demo failed:', error)
  process.exitCode = 1
})
