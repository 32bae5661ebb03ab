import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { exitCode, OutputReader, runCli, spawnCli, startServe } from './helpers.js'
import type { ServeProcess } from './helpers.js'

/** The one error line a failed command prints: `error: <code>: <message>`. */
function errorCode(stderr: string): string | undefined {
  const lines = stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one stderr line, got: ${stderr}`)
  return /^error: (\w+): ./.exec(lines[0] ?? '')?.[1]
}

describe('dataspace CLI against a real server', () => {
  let serve: ServeProcess
  before(async () => {
    serve = await startServe()
  })
  after(async () => {
    await serve.stop()
  })

  it('asserts an ownerless record, then gets and lists it as a table and as JSON', async () => {
    const data = '{"method":"GET","path":"/health"}'
    const put = await runCli(serve.url, [
      'assert',
      'api.route',
      'health',
      data,
      '--labels',
      'env=prod',
    ])
    assert.equal(put.code, 0, put.stderr)
    assert.match(put.stdout, /^KIND\s+ID\s+OWNER\s+REV\s+LABELS\s+DATA\n/)

    const got = await runCli(serve.url, ['get', 'api.route', 'health', '-o', 'json'])
    assert.equal(got.code, 0, got.stderr)
    const record = JSON.parse(got.stdout) as { owner: unknown; labels: unknown; data: unknown }
    // The command's session is gone, so the record must not be owned by it.
    assert.equal(record.owner, null)
    assert.deepEqual(record.labels, { env: 'prod' })
    assert.deepEqual(record.data, { method: 'GET', path: '/health' })

    const table = await runCli(serve.url, ['list', 'api.route', '--labels', 'env=prod'])
    assert.equal(table.code, 0, table.stderr)
    const rows = table.stdout.trimEnd().split('\n')
    assert.equal(rows.length, 2)
    assert.match(rows[1] ?? '', /^api\.route\s+health\s+-\s+\d+\s+env=prod\s+\{"method":"GET"/)

    const json = await runCli(serve.url, [
      'list',
      'api.route',
      '--fields',
      'path=/nope',
      '-o',
      'json',
    ])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual((JSON.parse(json.stdout) as { items: unknown[] }).items, [])
  })

  it('prints one error line and exits non-zero for a bad selector and a missing record', async () => {
    const bad = await runCli(serve.url, ['list', 'api.route', '--fields', 'a==='])
    assert.equal(bad.code, 1)
    assert.equal(errorCode(bad.stderr), 'InvalidSelector')
    assert.equal(bad.stdout, '')

    const missing = await runCli(serve.url, ['get', 'api.route', 'nope'])
    assert.equal(missing.code, 1)
    assert.equal(errorCode(missing.stderr), 'NotFound')

    const usage = await runCli(serve.url, ['list', 'api.route', '--feilds', 'x=1'])
    assert.equal(usage.code, 2)
    assert.equal(errorCode(usage.stderr), 'InvalidArgument')

    const down = await runCli('http://127.0.0.1:9', ['names'])
    assert.equal(down.code, 1)
    assert.equal(errorCode(down.stderr), 'Unavailable')
  })

  it('watch prints the snapshot and live events, and ends with exit 0 on SIGINT', async () => {
    const watch = spawnCli(['watch', 'job', '-o', 'json'], { DATASPACE_URL: serve.url })
    const output = new OutputReader(watch)
    try {
      await output.next(/"type":"snapshot"/)
      const put = await runCli(serve.url, ['assert', 'job', 'j1', '{"n":1}'])
      assert.equal(put.code, 0, put.stderr)
      const [line] = await output.next(/\{"type":"asserted".*\n/)
      assert.equal((JSON.parse(line) as { record: { id: string } }).record.id, 'j1')
      const gone = await runCli(serve.url, ['retract', 'job', 'j1'])
      assert.equal(gone.code, 0, gone.stderr)
      await output.next(/"type":"retracted".*\n/)
    } finally {
      watch.kill('SIGINT')
    }
    assert.equal(await exitCode(watch), 0)
  })

  it('assert --hold owns the record until interrupted, then it is retracted', async () => {
    const hold = spawnCli(['assert', 'lock', 'l1', '{}', '--hold', '-o', 'json'], {
      DATASPACE_URL: serve.url,
    })
    const output = new OutputReader(hold)
    try {
      await output.next(/"owner": "[^"]+"/)
      const held = await runCli(serve.url, ['get', 'lock', 'l1', '-o', 'json'])
      assert.notEqual((JSON.parse(held.stdout) as { owner: unknown }).owner, null)
    } finally {
      hold.kill('SIGINT')
    }
    assert.equal(await exitCode(hold), 0)
    const gone = await runCli(serve.url, ['get', 'lock', 'l1'])
    assert.equal(errorCode(gone.stderr), 'NotFound')
  })

  it('kv put, get, list and delete; names and groups answer empty tables', async () => {
    const put = await runCli(serve.url, ['kv', 'put', 'cfg', 'mode', 'fast'])
    assert.equal(put.code, 0, put.stderr)
    const got = await runCli(serve.url, ['kv', 'get', 'cfg', 'mode', '-o', 'json'])
    assert.equal((JSON.parse(got.stdout) as { value: unknown }).value, 'fast')
    const scan = await runCli(serve.url, ['kv', 'get', 'cfg'])
    assert.match(scan.stdout, /^KEY\s+REV\s+OWNER\s+VALUE\nmode\s+\d+\s+-\s+fast\n$/)
    const deleted = await runCli(serve.url, ['kv', 'delete', 'cfg', 'mode', '-o', 'json'])
    assert.deepEqual(JSON.parse(deleted.stdout), { deleted: true })

    const names = await runCli(serve.url, ['names', '-o', 'json'])
    assert.deepEqual(JSON.parse(names.stdout), { names: [] })
    const groups = await runCli(serve.url, ['groups', 'default', 'workers'])
    assert.equal(groups.stdout, 'PID\n')
  })

  it('nodes lists the server as the only node (memory backend)', async () => {
    const table = await runCli(serve.url, ['nodes'])
    assert.equal(table.code, 0, table.stderr)
    const lines = table.stdout.trimEnd().split('\n')
    assert.equal(lines.length, 2, table.stdout)
    assert.match(lines[1]!, new RegExp(`^local-[0-9a-f]{8} \\*\\s+${serve.url}\\s.*\\byes$`))
    const json = await runCli(serve.url, ['nodes', '-o', 'json'])
    const { nodes } = JSON.parse(json.stdout) as { nodes: { pid: number; self: boolean }[] }
    assert.deepEqual(
      nodes.map((n) => [n.pid, n.self]),
      [[serve.child.pid, true]],
    )
  })

  describe('dataspace list of a kind nobody defined or wrote', () => {
    it('says so on stderr and exits 0, as a table and as JSON', async () => {
      const table = await runCli(serve.url, ['list', 'api.rout'])
      assert.equal(table.code, 0, table.stderr)
      assert.equal(table.stdout, 'KIND  ID  OWNER  REV  LABELS  DATA\n')
      assert.equal(table.stderr, 'no kind "api.rout" is defined and no records of it exist\n')

      const json = await runCli(serve.url, [
        'list',
        'api.rout',
        '--labels',
        'env=prod',
        '-o',
        'json',
      ])
      assert.equal(json.code, 0, json.stderr)
      assert.deepEqual((JSON.parse(json.stdout) as { items: unknown[] }).items, [])
      assert.equal(json.stderr, 'no kind "api.rout" is defined and no records of it exist\n')
    })

    it('says nothing for a kind that has held records, or when records match', async () => {
      const put = await runCli(serve.url, ['assert', 'job', 'j1', '{"n":1}'])
      assert.equal(put.code, 0, put.stderr)
      const some = await runCli(serve.url, ['list', 'job'])
      assert.equal(some.stderr, '')
      const none = await runCli(serve.url, ['list', 'job', '--fields', 'n=2'])
      assert.equal(none.code, 0)
      assert.equal(none.stderr, '')
      const gone = await runCli(serve.url, ['retract', 'job', 'j1'])
      assert.equal(gone.code, 0, gone.stderr)
      const empty = await runCli(serve.url, ['list', 'job'])
      assert.equal(empty.stderr, '')
    })
  })
})
