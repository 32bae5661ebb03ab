// Remote workers: a coordinator queues tasks, worker OS processes claim them over the network,
// and one worker is killed mid-task. Its claimed task is retracted with it (reason
// `owner-exit`, once its session's lease runs out) and the coordinator queues it again.
//   npx tsx examples/remote-workers/main.ts
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createDataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import { connect } from '../../src/client/index.js'

const TASKS = 12
const ds = createDataspace()
await ds.defineKind('task', { indexes: ['status'] })
const server = await createServer({ ds, port: 0 })
const coordinator = await connect(server.url, { name: 'coordinator' })

const workerFile = fileURLToPath(new URL('worker.ts', import.meta.url))
const workers: ChildProcess[] = ['w1', 'w2', 'w3'].map((name) => {
  const child = spawn(process.execPath, ['--import', 'tsx', workerFile, server.url, name], {
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  return child
})

const queue = (n: number): Promise<unknown> =>
  coordinator.session.assert('task', `t${n}`, { n, status: 'queued' }, { owner: null })

// A task retracted because its owner died is queued again; one retracted as done is not.
const tasks = coordinator.watch<{ n: number; status: string }>('task')
;(async () => {
  for await (const event of tasks) {
    if (event.type === 'retracted' && event.reason === 'owner-exit') {
      console.log(`${event.record.id} was lost with its worker; queued again`)
      await queue(event.record.data.n)
    }
  }
})().catch((error: unknown) => {
  console.error('re-queueing lost tasks failed:', error)
  process.exitCode = 1
})

const members = coordinator.groups().monitor('workers')
for await (const event of members) {
  if (event.type === 'snapshot' && (event.groups.workers?.length ?? 0) === 3) break
  if (event.type === 'join' && (await coordinator.groups().members('workers')).length === 3) break
}
for (let n = 1; n <= TASKS; n++) await queue(n)

// Kill the first worker that holds a task.
const results = coordinator.watch<{ by: string }>('result')
for await (const event of coordinator.watch<{ by: string; status: string }>('task')) {
  if (event.type === 'asserted' && event.record.data.status === 'taken') {
    const victim = Number(event.record.data.by.slice(1)) - 1
    console.log(`killing ${event.record.data.by} while it works on ${event.record.id}`)
    workers[victim]?.kill('SIGKILL')
    break // leaving the loop closes this watch
  }
}

let done = 0
for await (const event of results) {
  if (event.type === 'snapshot') done = event.records.length
  if (event.type === 'asserted') done++
  if (done === TASKS) break
}
const { items } = await coordinator.list<{ n: number; square: number; by: string }>('result')
console.log(
  `all ${items.length} tasks done:`,
  items.map((r) => `${r.id}=${r.data.square} by ${r.data.by}`).join(', '),
)

for (const worker of workers) worker.kill('SIGTERM')
tasks.close()
await coordinator.close()
await server.close()
await ds.close()
