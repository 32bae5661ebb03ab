// The remote-workers example, run as it is documented: worker OS processes claim tasks over the
// network, one is SIGKILLed, and its task comes back through owner-exit.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { it } from 'node:test'
import { promisify } from 'node:util'

it('finishes every task although a worker is killed mid-task', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'examples/remote-workers/main.ts'],
    { timeout: 60_000 },
  )
  assert.match(stdout, /killing w\d while it works on t\d+/)
  assert.match(stdout, /t\d+ was lost with its worker; queued again/)
  const done = /all (\d+) tasks done: (.*)/.exec(stdout)
  assert.ok(done, stdout)
  assert.equal(done[1], '12')
  const ids = (done[2] ?? '').split(', ').map((entry) => entry.split('=')[0])
  assert.deepEqual(new Set(ids).size, 12, 'each task has exactly one result')
})
