// One scheduler OS process. It takes pending actors and places each on a worker with `claim`,
// in the RFC's order: a free worker in the actor's pool with its snapshot hot-cached, else any
// free worker in the pool. Several schedulers run at once against one server; nothing but the
// dataspace's transactions keeps them from placing an actor twice or filling a worker twice.
//   usage: scheduler.ts <url> <name>
import { connect } from '../../src/client/index.js'
import { Conflict } from '../../src/index.js'
import type { DataspaceRecord } from '../../src/index.js'
import { ACTOR, WORKER, workerSelectors } from './model.js'
import type { Actor, Worker } from './model.js'

const [url, name] = process.argv.slice(2)
if (url === undefined || name === undefined) throw new Error('usage: scheduler.ts <url> <name>')

const ds = await connect(url, { name, ttl: 1000 })
await ds.groups().join('schedulers', ds.session)
let stopping = false
let placedTotal = 0
let lostRaces = 0
process.on('SIGTERM', () => {
  stopping = true
})

/**
 * Places one actor, or returns `undefined` when another scheduler took it first or its pool
 * has no free worker (it stays pending and is tried again).
 *
 * Commit 1 pairs them atomically: it claims the actor by id only while it is still pending and,
 * in the same transaction, claims a worker by selector (patching `actor_id`). If either claim
 * matches nothing the transaction fails with `Conflict` and commits nothing, so an actor is never
 * marked scheduled without a worker, and two schedulers can never both win one actor or one
 * worker. Commit 2 records `worker_id` on the actor — guarded, so that it cannot land on an actor
 * that was requeued (its worker died) in between.
 */
async function place(actor: DataspaceRecord<Actor>): Promise<string | undefined> {
  const selectors = workerSelectors(actor.data)
  for (const locality of ['warm', 'cold'] as const) {
    let worker: DataspaceRecord<Worker>
    try {
      const { results } = await ds.session.transact({
        then: [
          {
            op: 'claim',
            kind: ACTOR,
            id: actor.id,
            fields: { status: 'pending' },
            patch: { status: 'scheduled', scheduler: name, locality },
          },
          { op: 'claim', kind: WORKER, fields: selectors[locality], patch: { actor_id: actor.id } },
        ],
      })
      worker = results[1] as DataspaceRecord<Worker>
    } catch (error) {
      if (!(error instanceof Conflict)) throw error
      // Either the actor is no longer pending (another scheduler won it) or no worker matched.
      const current = await ds.get<Actor>(ACTOR, actor.id)
      if (current?.data.status !== 'pending') {
        lostRaces++
        return undefined
      }
      continue
    }
    try {
      await ds.session.transact({
        if: [
          { kind: ACTOR, id: actor.id, field: 'status', equals: 'scheduled' },
          { kind: ACTOR, id: actor.id, field: 'worker_id', equals: '' },
          { kind: WORKER, id: worker.id, field: 'actor_id', equals: actor.id },
        ],
        then: [{ op: 'claim', kind: ACTOR, id: actor.id, patch: { worker_id: worker.id } }],
      })
    } catch (error) {
      if (!(error instanceof Conflict)) throw error
      return undefined // the worker died in between; the controller has requeued the actor
    }
    placedTotal++
    console.log(`${name}: ${actor.id} (${actor.data.snapshot}) → ${worker.id} [${locality}]`)
    return worker.id
  }
  return undefined
}

console.log(`${name} ready`)
while (!stopping) {
  const { items } = await ds.list<Actor>(ACTOR, { fields: { status: 'pending' }, limit: 50 })
  if (items.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    continue
  }
  // Start at a random pending actor, so that concurrent schedulers mostly work on different ones.
  const start = Math.floor(Math.random() * items.length)
  let placed = 0
  for (let i = 0; i < items.length && !stopping; i++) {
    if ((await place(items[(start + i) % items.length] as DataspaceRecord<Actor>)) !== undefined)
      placed++
  }
  // Nothing placed: the pools are full (or others won every race); do not spin.
  if (placed === 0) await new Promise((resolve) => setTimeout(resolve, 20))
}
console.log(`${name}: placed ${placedTotal} actors, lost ${lostRaces} races to other schedulers`)
await ds.close()
