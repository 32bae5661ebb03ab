import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  Conflict,
  createDataspace,
  NameTaken,
  NotFound,
  NotOwner,
  ProcessExited,
} from '../../src/index.js'

describe('name registry', () => {
  it('registers with a fence, whereis, idempotent re-register, NameTaken naming the holder', async () => {
    const ds = createDataspace()
    const a = ds.process('a')
    const b = ds.process('b')
    const { fence } = await ds.names.register(a, 'leader', { zone: 'eu' })
    assert.deepEqual(await ds.names.whereis('leader'), { pid: a.id, fence, meta: { zone: 'eu' } })
    assert.deepEqual(await ds.names.register(a, 'leader'), { fence })
    await assert.rejects(ds.names.register(b, 'leader'), (err: unknown) => {
      assert.ok(err instanceof NameTaken)
      assert.equal(err.holder, a.id)
      assert.match(err.message, new RegExp(a.id.replace(/[#/]/g, '.')))
      return true
    })
    assert.equal(await ds.names.whereis('nobody'), undefined)
    await ds.close()
  })

  it('unregister: NotFound, NotOwner, then free for another holder with a new fence', async () => {
    const ds = createDataspace()
    const a = ds.process('a')
    const b = ds.process('b')
    const first = await ds.names.register(a, 'svc')
    await assert.rejects(ds.names.unregister(b, 'svc'), NotOwner)
    await assert.rejects(ds.names.unregister(a, 'other'), NotFound)
    await ds.names.unregister(a, 'svc')
    const second = await ds.names.register(b, 'svc')
    assert.ok(second.fence > first.fence)
    await ds.close()
  })

  it('releases a name in the same commit as its holder exit', async () => {
    const ds = createDataspace()
    const a = ds.process('a')
    await a.assert('k', 'x', {})
    await ds.names.register(a, 'svc')
    const watch = ds.names.watch('sv*')
    const before = ds.revision
    await a.exit()
    assert.equal(ds.revision, before + 1)
    assert.equal(await ds.names.whereis('svc'), undefined)
    const events: string[] = []
    for await (const event of watch) {
      events.push(event.type === 'retracted' ? `${event.type}:${event.reason}` : event.type)
      if (event.type === 'retracted') break
    }
    assert.deepEqual(events, ['snapshot', 'retracted:owner-exit'])
    await assert.rejects(ds.names.register(a, 'again'), ProcessExited)
    await ds.close()
  })

  it('list(glob) and send({ name, fence }) refusing a stale fence', async () => {
    const ds = createDataspace()
    const sender = ds.process('sender')
    const old = ds.process('old')
    const fresh = ds.process('fresh')
    const stale = await ds.names.register(old, 'worker-1')
    await ds.names.register(fresh, 'worker-2')
    assert.deepEqual(
      (await ds.names.list('worker-*')).map((b) => `${b.name}=${b.pid}`),
      [`worker-1=${old.id}`, `worker-2=${fresh.id}`],
    )
    assert.equal(await sender.send({ name: 'worker-1', fence: stale.fence }, 'job'), 1)
    await old.exit()
    const current = await ds.names.register(fresh, 'worker-1')
    await assert.rejects(sender.send({ name: 'worker-1', fence: stale.fence }, 'job'), Conflict)
    assert.equal(await sender.send({ name: 'worker-1', fence: current.fence }, 'job'), 1)
    assert.equal(await sender.send({ name: 'worker-1' }, 'job'), 1)
    assert.equal(await sender.send({ name: 'unbound' }, 'job'), 0)
    await ds.close()
  })
})
