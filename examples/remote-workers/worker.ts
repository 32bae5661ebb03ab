// One worker OS process: connects to the server, joins the `workers` group, and claims queued
// tasks one at a time. A claimed task is owned by the worker, so if the worker dies the server
// retracts it — which is how the coordinator learns the task must run again.
import { connect } from '../../src/client/index.js'

const [url, name] = process.argv.slice(2)
if (url === undefined || name === undefined) throw new Error('usage: worker.ts <url> <name>')

const ds = await connect(url, { name, ttl: 1000 })
await ds.groups().join('workers', ds.session)
console.log(`${name} ready`)

for (;;) {
  const task = await ds.session.claim<{ n: number }>('task', {
    fields: 'status=queued',
    patch: { status: 'taken', by: name },
    owner: 'self',
  })
  if (task === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    continue
  }
  await new Promise((resolve) => setTimeout(resolve, 30)) // the work
  // Done: the result is an ownerless record, so it outlives this worker; the task goes.
  await ds.session.transact({
    then: [
      {
        op: 'assert',
        kind: 'result',
        id: task.id,
        data: { n: task.data.n, square: task.data.n ** 2, by: name },
        owner: null,
      },
      { op: 'retract', kind: 'task', id: task.id },
    ],
  })
}
