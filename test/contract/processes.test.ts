import assert from 'node:assert/strict'
import { it } from 'node:test'
import { InvalidArgument, ProcessExited } from '../../src/index.js'
import { contract, currentRevision, drained, next } from './harness.js'

contract('processes', (c) => {
  it('exit is idempotent and resolves exited with the reason', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'x', {})
    await Promise.all([p.exit('shutdown'), p.exit('other')])
    assert.equal(await p.exited, 'shutdown')
    assert.equal(p.alive, false)
    await assert.rejects(p.retract('k', 'x'), ProcessExited)
    await assert.rejects(p.transact({ then: [] }), ProcessExited)
    await assert.rejects(p.claim('k', { patch: {} }), ProcessExited)
    await assert.rejects(p.send(p.id, 'hi'), ProcessExited)
    assert.equal(await ds.get('k', 'x'), undefined)
  })

  it('stops accepting operations as soon as exit is called', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'x', {})
    const exiting = p.exit()
    assert.equal(p.alive, false)
    await assert.rejects(p.assert('k', 'y', {}), ProcessExited)
    await exiting
    assert.equal(await ds.get('k', 'y'), undefined)
  })

  it('does not spend a revision on the exit of a process that owned nothing', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    const before = await currentRevision(ds)
    await p.exit()
    assert.equal(await currentRevision(ds), before)
  })

  it('monitor settles with the exit reason; noproc for unknown or dead pids', async () => {
    const ds = await c.open()
    const watcher = ds.process('watcher')
    const target = ds.process('target')
    const down = watcher.monitor(target.id)
    await target.exit('crashed')
    assert.equal(await down, 'crashed')
    assert.equal(await watcher.monitor(target.id), 'noproc')
    assert.equal(await watcher.monitor('local/nobody#99'), 'noproc')
  })

  it('a monitor fires after the exit commit: the records are already gone', async () => {
    const ds = await c.open()
    const watcher = ds.process('watcher')
    const target = ds.process('target')
    await target.assert('k', 'x', {})
    const seen = watcher.monitor(target.id).then(async () => ds.get('k', 'x'))
    await target.exit()
    assert.equal(await seen, undefined)
  })

  it('spawn runs the function after spawn returns and hands it a signal aborted on exit', async () => {
    const ds = await c.open()
    let started = false
    let signal: AbortSignal | undefined
    const proc = ds.spawn('loop', async (_self, s) => {
      started = true
      signal = s
      await new Promise((resolve) => s.addEventListener('abort', resolve))
    })
    assert.equal(started, false)
    await new Promise((r) => setImmediate(r))
    assert.equal(started, true)
    await proc.exit('stop')
    assert.equal(signal?.aborted, true)
    assert.equal(await proc.exited, 'stop')
  })

  it('spawn with an already-aborted signal exits at once', async () => {
    const ds = await c.open()
    let ran = false
    const proc = ds.spawn('x', () => void (ran = true), { signal: AbortSignal.abort() })
    assert.equal(await proc.exited, 'aborted')
    await new Promise((r) => setImmediate(r))
    assert.equal(ran, false)
  })

  it('a synchronous throw in a spawned function is its exit reason', async () => {
    const ds = await c.open()
    const error = new Error('sync')
    const proc = ds.spawn('x', () => {
      throw error
    })
    assert.deepEqual(await proc.exited, { error })
  })

  it('delivers messages to a pid mailbox and closes it on exit', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    assert.equal(await a.send(b.id, { hello: 1 }), 1)
    assert.equal(await a.send('local/ghost#9', 'x'), 0)
    const iterator = b.messages[Symbol.asyncIterator]()
    assert.deepEqual((await iterator.next()).value, { from: a.id, message: { hello: 1 } })
    await b.exit()
    assert.equal((await iterator.next()).done, true)
    assert.equal(await b.messages.closed, 'owner-exit')
    assert.equal(await a.send(b.id, 'late'), 0)
  })

  it('delivers messages from a peer to a pid mailbox', async () => {
    const ds = await c.open()
    const other = await c.peer(ds)
    const a = other.process('a')
    const b = ds.process('b')
    const mailbox = b.messages
    // Remotely b exists on the server once its (pipelined) opening has arrived there.
    await c.settle(ds)
    assert.equal(await a.send(b.id, ['x', 1, null]), 1)
    assert.deepEqual(await next(mailbox), { from: a.id, message: ['x', 1, null] })
  })

  it('sends to the watchers of a record as message events, never stored', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'r1', { tier: 'web' }, { labels: { tier: 'web' } })
    const byId = ds.watch('k', { id: 'r1', snapshot: false })
    const byLabel = ds.watch('k', { labels: 'tier=db', snapshot: false })
    const toMissing = ds.watch('k', { id: 'nope', snapshot: false })
    assert.equal(await p.send({ kind: 'k', id: 'r1' }, 'ping'), 1)
    assert.equal(await p.send({ kind: 'k', id: 'nope' }, 'ping2'), 1)
    const event = await next(byId)
    assert.deepEqual(event, { type: 'message', from: p.id, kind: 'k', id: 'r1', message: 'ping' })
    assert.deepEqual(await drained(c, ds, byLabel), [])
    assert.equal((await next(toMissing)).type, 'message')
    const late = ds.watch('k', { id: 'r1' })
    assert.deepEqual(
      (await drained(c, ds, late)).map((e) => e.type),
      ['snapshot'],
    )
  })

  it('refuses a non-JSON message in process and remotely alike, not converted (one value rule)', async () => {
    const ds = await c.open()
    const a = ds.process('a')
    const b = ds.process('b')
    const message = { when: new Date(0) }
    await assert.rejects(a.send(b.id, message), /message\.when is a Date/)
    await assert.rejects(a.send(b.id, { n: NaN }), InvalidArgument)
    assert.equal(Object.isFrozen(message), false, 'the caller keeps its object')
    assert.equal(await a.send(b.id, { n: 1 }), 1)
    assert.deepEqual((await next(b.messages)).message, { n: 1 })
  })

  it('rejects unknown send targets with InvalidArgument', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    assert.equal(await p.send({ group: 'empty' }, 'x'), 0)
    await assert.rejects(p.send({ queue: 'q' } as never, 'x'), InvalidArgument)
    await assert.rejects(p.send(42 as never, 'x'), InvalidArgument)
  })

  it('close exits every process and ends every watch', async () => {
    const ds = await c.open()
    const p = ds.process('p')
    await p.assert('k', 'x', {})
    const watch = ds.watch('k')
    assert.equal((await next(watch)).type, 'snapshot')
    await ds.close()
    assert.equal(await p.exited, 'shutdown')
    assert.equal(await watch.closed, 'dataspace-closed')
    assert.equal((await watch.next()).done, true)
    await assert.rejects(ds.get('k', 'x'), { code: 'Closed' })
    assert.throws(() => ds.process('q'), { code: 'Closed' })
  })
})
