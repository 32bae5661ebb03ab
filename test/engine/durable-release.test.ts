// "Nothing is seen before it is durable" (docs/design.md, the commit path's Release step): on a
// durable backend, watch events and other processes' reads are released only once the revision
// they show is durable. The backend here is real SQLite behind a valve that holds writes back,
// so "applied but not durable" lasts as long as the test wants.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import type { Backend, WriteBatch } from '../../src/backends/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import { connect } from '../../src/client/index.js'
import { createDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-durable-release-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/** Real SQLite whose writes wait while the valve is shut. */
function valved(): { backend: Backend; shut(): void; open(): void } {
  const inner = sqliteBackend({ path: join(dir, `db-${++files}.sqlite`) })
  let gate: Promise<void> | undefined
  let release = (): void => undefined
  const backend = {
    ...inner,
    async write(batch: WriteBatch): Promise<void> {
      while (gate !== undefined) await gate
      await inner.write(batch)
    },
  }
  return {
    backend,
    shut() {
      gate ??= new Promise((resolve) => (release = resolve))
    },
    open() {
      gate = undefined
      release()
    },
  }
}

/** Resolves to 'pending' if `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'pending'>((resolve) => (timer = setTimeout(resolve, ms, 'pending')))
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function setup(): Promise<{ ds: Dataspace; valve: ReturnType<typeof valved> }> {
  const valve = valved()
  const ds = createDataspace({ backend: valve.backend })
  await ds.defineKind('task')
  return { ds, valve }
}

describe('durable release: nothing is seen before it is durable', () => {
  it('holds a watch event until its commit is durable', async () => {
    const { ds, valve } = await setup()
    const watch = ds.watch('task')
    const first = await watch.next()
    assert.equal(first.value?.type, 'snapshot')
    valve.shut()
    const write = ds.process('writer').assert('task', 't1', { n: 1 })
    const next = watch.next()
    assert.equal(await within(next, 150), 'pending', 'event released before durable')
    valve.open()
    await write
    const event = await next
    assert.equal(event.value?.type, 'asserted')
    await watch.return()
    await ds.close()
  })

  it('holds a snapshot that shows a commit not yet durable', async () => {
    const { ds, valve } = await setup()
    valve.shut()
    const write = ds.process('writer').assert('task', 't1', { n: 1 })
    const watch = ds.watch('task')
    const next = watch.next()
    assert.equal(await within(next, 150), 'pending', 'snapshot released before durable')
    valve.open()
    await write
    const snapshot = await next
    assert.equal(snapshot.value?.type, 'snapshot')
    assert.deepEqual(
      snapshot.value.type === 'snapshot' && snapshot.value.records.map((r) => r.id),
      ['t1'],
    )
    await watch.return()
    await ds.close()
  })

  it("holds another process's get and list until the revision they show is durable", async () => {
    const { ds, valve } = await setup()
    valve.shut()
    const write = ds.process('writer').assert('task', 't1', { n: 1 })
    assert.equal(await within(ds.get('task', 't1'), 150), 'pending', 'get released early')
    assert.equal(await within(ds.list('task'), 50), 'pending', 'list released early')
    valve.open()
    await write
    assert.equal((await ds.get('task', 't1'))?.id, 't1')
    assert.deepEqual(
      (await ds.list('task')).items.map((r) => r.id),
      ['t1'],
    )
    await ds.close()
  })

  it('holds facade reads and monitors (KV, names, groups) the same way', async () => {
    const { ds, valve } = await setup()
    const proc = ds.process('member')
    const monitor = ds.groups().monitor('g')
    assert.equal((await monitor.next()).value?.type, 'snapshot')
    const kvWatch = ds.kv('cfg').watch()
    valve.shut()
    const writes = Promise.all([
      ds.kv('cfg').put('mode', 'fast'),
      ds.names.register(proc, 'svc'),
      ds.groups().join('g', proc),
    ])
    assert.equal(await within(ds.kv('cfg').get('mode'), 150), 'pending', 'kv.get early')
    assert.equal(await within(ds.names.whereis('svc'), 50), 'pending', 'whereis early')
    assert.equal(await within(ds.groups().members('g'), 50), 'pending', 'members early')
    const groupEvent = monitor.next()
    const kvEvent = kvWatch.next()
    assert.equal(await within(groupEvent, 50), 'pending', 'group event early')
    assert.equal(await within(kvEvent, 50), 'pending', 'kv event early')
    valve.open()
    await writes
    assert.equal((await ds.kv('cfg').get('mode'))?.value, 'fast')
    assert.deepEqual(await ds.groups().members('g'), [proc.id])
    assert.equal((await groupEvent).value?.type, 'join')
    assert.equal((await kvEvent).value?.type, 'put')
    await monitor.return()
    await kvWatch.return()
    await ds.close()
  })

  it('holds events and reads over the network too (WebSocket client, HTTP)', async () => {
    const { ds, valve } = await setup()
    const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
    const client = await connect(server.url, { name: 'watcher' })
    try {
      const watch = client.watch('task')
      assert.equal((await watch.next()).value?.type, 'snapshot')
      valve.shut()
      const write = ds.process('writer').assert('task', 't1', { n: 1 })
      const event = watch.next()
      const read = fetch(`${server.url}/v1/records/task/t1`)
      assert.equal(await within(event, 200), 'pending', 'remote event released early')
      assert.equal(await within(read, 50), 'pending', 'HTTP read released early')
      valve.open()
      await write
      assert.equal((await event).value?.type, 'asserted')
      assert.equal((await read).status, 200)
      await watch.return()
    } finally {
      valve.open()
      await client.close()
      await server.close()
      await ds.close()
    }
  })

  it('releases at once on the memory backend (nothing to wait for)', async () => {
    const ds = createDataspace()
    const watch = ds.watch('task')
    await watch.next()
    await ds.process('writer').assert('task', 't1', {})
    assert.equal((await within(watch.next(), 1_000)) !== 'pending', true)
    await watch.return()
    await ds.close()
  })
})
