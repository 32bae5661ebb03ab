// The name registry with fence tokens: against the engine and against a network client.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import {
  Conflict,
  Forbidden,
  InvalidArgument,
  NameTaken,
  NotFound,
  NotOwner,
  ProcessExited,
} from '../../src/index.js'
import { contract, drained, next } from './harness.js'

contract('name registry', (c) => {
  it('registers with a fence, whereis, idempotent re-register, NameTaken naming the holder', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    const { fence } = await ds.names.register(a, 'leader', { zone: 'eu' })
    assert.deepEqual(await ds.names.whereis('leader'), { pid: a.id, fence, meta: { zone: 'eu' } })
    assert.deepEqual(await ds.names.register(a, 'leader'), { fence })
    await assert.rejects(ds.names.register(b, 'leader'), (err: unknown) => {
      assert.ok(err instanceof NameTaken)
      assert.equal(err.holder, a.id)
      assert.match(err.message, new RegExp(a.id.replace(/[#/.]/g, '\\$&')))
      return true
    })
    assert.equal(await ds.names.whereis('nobody'), undefined)
  })

  it('refuses metadata that is not JSON instead of converting it', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    await assert.rejects(ds.names.register(a, 'n', { zone: NaN }), InvalidArgument)
    await assert.rejects(ds.names.register(a, 'n', new Date(0) as never), InvalidArgument)
    assert.equal(await ds.names.whereis('n'), undefined)
  })

  it('unregister: NotFound, NotOwner, then free for another holder with a new fence', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    const first = await ds.names.register(a, 'svc')
    await assert.rejects(ds.names.unregister(b, 'svc'), NotOwner)
    await assert.rejects(ds.names.unregister(a, 'other'), NotFound)
    await ds.names.unregister(a, 'svc')
    assert.equal(await ds.names.whereis('svc'), undefined)
    const second = await ds.names.register(b, 'svc')
    assert.ok(second.fence > first.fence)
  })

  it("another client's processes: in process any holder acts; over the network, Forbidden", async () => {
    const ds = await c.open()
    const other = await c.peer(ds)
    const theirs = other.process('theirs')
    const { fence } = await other.names.register(theirs, 'svc')
    if (c.target === 'local') {
      assert.deepEqual(await ds.names.register(theirs, 'svc'), { fence })
      await ds.names.unregister(theirs, 'svc')
      assert.equal(await ds.names.whereis('svc'), undefined)
    } else {
      // docs/protocol.md: every pid must be the session's process or one of its children.
      await assert.rejects(ds.names.register(theirs, 'mine'), Forbidden)
      await assert.rejects(ds.names.unregister(theirs, 'svc'), Forbidden)
      assert.deepEqual(await ds.names.whereis('svc'), { pid: theirs.id, fence, meta: null })
      assert.equal(await ds.names.whereis('mine'), undefined)
    }
  })

  it('releases a name in the same commit as its holder exit', async () => {
    const ds = await c.open()
    const watcher = await c.peer(ds)
    const a = ds.process('a')
    await a.assert('k', 'x', {})
    await ds.names.register(a, 'svc')
    const names = watcher.names.watch('sv*')
    const records = watcher.watch('k')
    assert.equal((await next(names)).type, 'snapshot')
    assert.equal((await next(records)).type, 'snapshot')
    await a.exit()
    assert.equal(await ds.names.whereis('svc'), undefined)
    const released = await next(names)
    const retracted = await next(records)
    assert.equal(released.type === 'retracted' && released.reason, 'owner-exit')
    assert.equal(released.type === 'retracted' && released.record.id, 'svc')
    assert.equal(retracted.type === 'retracted' && retracted.reason, 'owner-exit')
    assert.equal(
      'revision' in released && released.revision,
      'revision' in retracted && retracted.revision,
      'the name and the record go in one commit',
    )
    assert.deepEqual(await drained(c, ds, names), [])
    await assert.rejects(ds.names.register(a, 'again'), ProcessExited)
  })

  it('list(glob) and send({ name, fence }) refusing a stale fence', async () => {
    const ds = await c.open()
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
    assert.deepEqual(await next(old.messages), { from: sender.id, message: 'job' })
    await old.exit()
    const current = await ds.names.register(fresh, 'worker-1')
    await assert.rejects(sender.send({ name: 'worker-1', fence: stale.fence }, 'job'), Conflict)
    assert.equal(await sender.send({ name: 'worker-1', fence: current.fence }, 'job'), 1)
    assert.equal(await sender.send({ name: 'worker-1' }, 'job'), 1)
    assert.equal(await sender.send({ name: 'unbound' }, 'job'), 0)
  })
})
