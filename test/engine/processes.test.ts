import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, InvalidArgument, ProcessExited } from '../../src/index.js'
import { drain, nextEvent } from './helpers.js'

describe('processes', () => {
  it('names pids <node>/<name>#<n>', async () => {
    const ds = createDataspace({ node: 'n1' })
    const a = ds.process('router')
    const b = ds.process('router')
    assert.equal(a.id, 'n1/router#1')
    assert.equal(b.id, 'n1/router#2')
    assert.equal(a.name, 'router')
    await ds.close()
  })

  it('exit is idempotent and resolves exited with the reason', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    await p.assert('k', 'x', {})
    await Promise.all([p.exit('shutdown'), p.exit('other')])
    assert.equal(await p.exited, 'shutdown')
    assert.equal(p.alive, false)
    await assert.rejects(p.retract('k', 'x'), ProcessExited)
    await assert.rejects(p.transact({ then: [] }), ProcessExited)
    await assert.rejects(p.claim('k', { patch: {} }), ProcessExited)
    await assert.rejects(p.send(p.id, 'hi'), ProcessExited)
    await ds.close()
  })

  it('does not spend a revision on the exit of a process that owned nothing', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    const before = ds.revision
    await p.exit()
    assert.equal(ds.revision, before)
    await ds.close()
  })

  it('monitor settles with the exit reason; noproc for unknown or dead pids', async () => {
    const ds = createDataspace()
    const watcher = ds.process('watcher')
    const target = ds.process('target')
    const down = watcher.monitor(target.id)
    await target.exit('crashed')
    assert.equal(await down, 'crashed')
    assert.equal(await watcher.monitor(target.id), 'noproc')
    assert.equal(await watcher.monitor('local/nobody#99'), 'noproc')
    await ds.close()
  })

  it('a monitor fires after the exit commit: the records are already gone', async () => {
    const ds = createDataspace()
    const watcher = ds.process('watcher')
    const target = ds.process('target')
    await target.assert('k', 'x', {})
    const seen = watcher.monitor(target.id).then(async () => ds.get('k', 'x'))
    await target.exit()
    assert.equal(await seen, undefined)
    await ds.close()
  })

  it('spawn runs the function after spawn returns and hands it a signal aborted on exit', async () => {
    const ds = createDataspace()
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
    await ds.close()
  })

  it('spawn with an already-aborted signal exits at once', async () => {
    const ds = createDataspace()
    let ran = false
    const proc = ds.spawn('x', () => void (ran = true), { signal: AbortSignal.abort() })
    assert.equal(await proc.exited, 'aborted')
    await new Promise((r) => setImmediate(r))
    assert.equal(ran, false)
    await ds.close()
  })

  it('a synchronous throw in a spawned function is its exit reason', async () => {
    const ds = createDataspace()
    const error = new Error('sync')
    const proc = ds.spawn('x', () => {
      throw error
    })
    assert.deepEqual(await proc.exited, { error })
    await ds.close()
  })

  it('delivers messages to a pid mailbox and closes it on exit', async () => {
    const ds = createDataspace()
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
    await ds.close()
  })

  it('bounds the mailbox: drops are counted and reported on the next delivered message', async () => {
    const ds = createDataspace({ mailboxSize: 2 })
    const a = ds.process('a')
    const b = ds.process('b')
    for (let i = 0; i < 5; i++) await a.send(b.id, i)
    assert.equal(ds.stats.droppedMailboxMessages, 3)
    const iterator = b.messages[Symbol.asyncIterator]()
    assert.equal((await iterator.next()).value?.message, 0)
    assert.equal((await iterator.next()).value?.message, 1)
    await a.send(b.id, 5)
    assert.deepEqual((await iterator.next()).value, { from: a.id, message: 5, dropped: 3 })
    await ds.close()
  })

  it('sends to the watchers of a record as message events, never stored', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    await p.assert('k', 'r1', { tier: 'web' }, { labels: { tier: 'web' } })
    const byId = ds.watch('k', { id: 'r1', snapshot: false })
    const byLabel = ds.watch('k', { labels: 'tier=db', snapshot: false })
    const toMissing = ds.watch('k', { id: 'nope', snapshot: false })
    assert.equal(await p.send({ kind: 'k', id: 'r1' }, 'ping'), 1)
    assert.equal(await p.send({ kind: 'k', id: 'nope' }, 'ping2'), 1)
    const event = await nextEvent(byId)
    assert.deepEqual(event, { type: 'message', from: p.id, kind: 'k', id: 'r1', message: 'ping' })
    assert.deepEqual(await drain(byLabel), [])
    assert.equal((await nextEvent(toMissing)).type, 'message')
    const late = ds.watch('k', { id: 'r1' })
    assert.deepEqual(
      (await drain(late)).map((e) => e.type),
      ['snapshot'],
    )
    await ds.close()
  })

  it('rejects unknown send targets with InvalidArgument', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    assert.equal(await p.send({ group: 'empty' }, 'x'), 0)
    await assert.rejects(p.send({ queue: 'q' } as never, 'x'), InvalidArgument)
    await assert.rejects(p.send(42 as never, 'x'), InvalidArgument)
    await ds.close()
  })

  it('close exits every process and ends every watch', async () => {
    const ds = createDataspace()
    const p = ds.process('p')
    await p.assert('k', 'x', {})
    const watch = ds.watch('k')
    await ds.close()
    assert.equal(await p.exited, 'shutdown')
    assert.equal(await watch.closed, 'dataspace-closed')
    await assert.rejects(ds.get('k', 'x'), { code: 'Closed' })
    assert.throws(() => ds.process('q'), { code: 'Closed' })
  })
})
