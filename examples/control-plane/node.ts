// One node agent OS process: it hosts a few workers, each its own client session that asserts
// its own `substrate.worker` record. Nobody deregisters a worker: when this process dies, each
// session's lease runs out and the server retracts the worker (reason `owner-exit`).
//   usage: node.ts <url> <node name> <workers as JSON: [{ id, pool, size, gpu_type, cached_snapshots }]>
import { connect } from '../../src/client/index.js'
import type { DataspaceClient } from '../../src/client/index.js'
import { WORKER } from './model.js'
import type { Worker } from './model.js'

interface WorkerSpec {
  readonly id: string
  readonly pool: string
  readonly size: string
  readonly gpu_type: string
  readonly cached_snapshots: readonly string[]
}

const [url, nodeName, specs] = process.argv.slice(2)
if (url === undefined || nodeName === undefined || specs === undefined) {
  throw new Error('usage: node.ts <url> <node name> <workers JSON>')
}

const sessions: DataspaceClient[] = []
for (const spec of JSON.parse(specs) as WorkerSpec[]) {
  // A short lease: a killed node's workers are gone within a second.
  const session = await connect(url, { name: spec.id, ttl: 1000 })
  sessions.push(session)
  const worker: Worker = {
    pool: spec.pool,
    node_name: nodeName,
    size: spec.size,
    gpu_type: spec.gpu_type,
    status: 'ready',
    actor_id: '',
    cached_snapshots: spec.cached_snapshots,
  }
  await session.session.assert(WORKER, spec.id, worker)
}
console.log(`${nodeName}: ${sessions.length} workers up`)

// A graceful stop closes the sessions (their workers leave at once); SIGKILL leaves it to the lease.
process.on('SIGTERM', () => {
  Promise.all(sessions.map((session) => session.close())).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`${nodeName}: closing sessions failed:`, error)
      process.exit(1)
    },
  )
})
