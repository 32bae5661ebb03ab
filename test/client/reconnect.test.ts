// Reconnects through a TCP proxy in front of an in-process server: writes re-sent after a cut
// take effect once, calls made while disconnected go out after, a lost session is restored
// (with a conflict for what another process took meanwhile), and `signal` aborts a pending call.
import assert from 'node:assert/strict'
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import { connect } from '../../src/client/index.js'
import type { ClientStatus, DataspaceClient } from '../../src/client/index.js'
import { createDataspace } from '../../src/index.js'
import type { Dataspace, WatchEvent } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'
import { Collector, sleep, TcpProxy, types, until } from './helpers.js'

const FAST = { initialMs: 20, maxMs: 100 }

describe('client reconnects (in-process server, TCP proxy)', () => {
  let ds: Dataspace
  let server: DataspaceServer
  let proxy: TcpProxy
  let clients: DataspaceClient[] = []

  const client = async (ttl = 5_000): Promise<DataspaceClient> => {
    const c = await connect(proxy.url, { name: 'client', ttl, backoff: FAST })
    clients.push(c)
    return c
  }

  before(async () => {
    ds = createDataspace()
    server = await createServer({ ds, port: 0, limits: { minSessionTtl: 100 } })
  })
  after(async () => {
    await server.close()
    await ds.close()
  })
  beforeEach(async () => {
    proxy = await TcpProxy.start(Number(new URL(server.url).port))
  })
  afterEach(async () => {
    proxy.up()
    await Promise.race([Promise.all(clients.map((c) => c.close().catch(() => {}))), sleep(2_000)])
    clients = []
    await proxy.close()
  })

  it('applies writes whose answers were lost exactly once after the resume', async () => {
    const kind = 'rc.once'
    const c = await client()
    const status = new Collector<ClientStatus>(c.status())
    const seen = new Collector<WatchEvent>(ds.watch(kind))
    const members = ds.groups('rc')
    await c.session.assert(kind, 'warmup', {})

    // The calls reach the server and are applied, but every answer is lost with the connection.
    proxy.mute()
    const writes = Promise.all([
      c.session.assert(kind, 'x', { n: 1 }),
      c.groups('rc').join('g', c.session),
      c.kv('rc').put('k', 1, { owner: c.session }),
      c.session.send(c.session.id, 'hello'),
    ])
    await until(
      async () =>
        (await ds.get(kind, 'x')) !== undefined &&
        (await members.members('g')).length > 0 &&
        (await ds.kv('rc').get('k')) !== undefined,
      2_000,
      'the writes applied on the server',
    )
    const revisionBefore = ds.revision
    proxy.cut()
    const [record, joined, entry, delivered] = await writes
    assert.deepEqual(types(status.items), ['disconnected', 'reconnected'])
    // Re-sent with the same ids on the resumed session: answered from the server's cache.
    assert.equal(record.id, 'x')
    assert.equal(record.revision, record.createdRevision)
    assert.equal(joined, 'ok')
    assert.equal(entry.value, 1)
    assert.equal(delivered, 1)
    assert.deepEqual(await members.members('g'), [c.session.id]) // joined once, not twice
    assert.equal((await ds.get(kind, 'x'))?.revision, record.revision)
    assert.equal((await ds.kv('rc').get('k'))?.revision, entry.revision)
    assert.equal(ds.revision, revisionBefore)
    const asserted = seen.items.filter((e) => e.type === 'asserted' && e.record.id === 'x')
    assert.equal(asserted.length, 1)
    // One message in the mailbox: the send was not repeated.
    const mailbox = new Collector(c.session.messages)
    await mailbox.until((m) => m.length === 1, 2_000, 'the message')
    await sleep(50)
    assert.equal(mailbox.items.length, 1)
    for (const x of [status, seen, mailbox]) x.close()
  })

  it('sends calls made while disconnected once the connection is back', async () => {
    const kind = 'rc.later'
    const c = await client()
    const status = new Collector<ClientStatus>(c.status())
    await c.session.assert(kind, 'before', {})
    proxy.down()
    await status.until((s) => types(s).includes('disconnected'), 2_000, 'disconnected')
    const later = Promise.all([
      c.session.assert(kind, 'during', { n: 1 }),
      c.get(kind, 'before'),
      c.kv('rc').put('later', 'v'),
    ])
    await sleep(150)
    assert.equal(await ds.get(kind, 'during'), undefined) // nothing went out yet
    proxy.up()
    const [during, before, entry] = await later
    assert.equal(during.owner, c.session.id)
    assert.equal(before?.id, 'before')
    assert.equal(entry.value, 'v')
    assert.equal((await ds.get(kind, 'during'))?.revision, during.revision)
    assert.equal(types(status.items).at(-1), 'reconnected')
    status.close()
  })

  it('restores records, groups, names and KV after a lost session, with conflicts', async () => {
    const kind = 'rc.lost'
    const TTL = 300
    const c = await client(TTL)
    const status = new Collector<ClientStatus>(c.status())
    const worker = c.process('worker')
    await c.session.assert(kind, 's', { by: 'session' }, { labels: { role: 'main' } })
    await worker.assert(kind, 'w', { by: 'worker' })
    await c.groups('rc').join('pool', [c.session, worker])
    await c.names.register(worker, 'rc-worker', { v: 1 })
    await c.names.register(c.session, 'rc-taken')
    await c.kv('rc').put('owned', { n: 1 }, { owner: worker })
    const oldSession = c.session.id
    const oldWorker = worker.id

    // Down for longer than the lease: the server retracts everything the session owned.
    proxy.down()
    await until(async () => (await ds.list(kind)).items.length === 0, TTL + 2_000, 'expiry')
    // Meanwhile another process takes one of the names.
    const thief = ds.process('thief')
    await ds.names.register(thief, 'rc-taken')
    proxy.up()

    await status.until((s) => types(s).includes('conflict'), 5_000, 'session-lost + conflict')
    const lost = status.items.find((s) => s.type === 'session-lost')
    assert.ok(lost?.type === 'session-lost')
    assert.equal(lost.previousPid, oldSession)
    assert.equal(lost.pid, c.session.id)
    assert.notEqual(c.session.id, oldSession)
    assert.notEqual(worker.id, oldWorker)
    // process, 2 records, 2 memberships, 1 name, 1 KV key; the taken name is the conflict.
    assert.equal(lost.restored, 7)
    const conflicts = status.items.filter((s) => s.type === 'conflict')
    assert.equal(conflicts.length, 1)
    assert.ok(conflicts[0]?.type === 'conflict')
    assert.equal(conflicts[0].what, 'name rc-taken')
    assert.equal(conflicts[0].error.code, 'NameTaken')

    const records = (await ds.list(kind)).items
    assert.deepEqual(
      records.map((r) => [r.id, r.owner, r.data, r.labels]),
      [
        ['s', c.session.id, { by: 'session' }, { role: 'main' }],
        ['w', worker.id, { by: 'worker' }, {}],
      ],
    )
    assert.deepEqual(
      (await ds.groups('rc').members('pool')).sort(),
      [c.session.id, worker.id].sort(),
    )
    assert.equal((await ds.names.whereis('rc-worker'))?.pid, worker.id)
    assert.equal((await ds.names.whereis('rc-taken'))?.pid, thief.id)
    const entry = await ds.kv('rc').get('owned')
    assert.deepEqual([entry?.value, entry?.owner], [{ n: 1 }, worker.id])
    // The restored client works as before.
    await worker.assert(kind, 'w2', {})
    assert.equal((await ds.get(kind, 'w2'))?.owner, worker.id)
    status.close()
    await thief.exit()
  })

  it('opens a process made while disconnected on the new session when the old one is lost', async () => {
    const kind = 'rc.late'
    const TTL = 300
    const c = await client(TTL)
    const status = new Collector<ClientStatus>(c.status())
    proxy.down()
    await status.until((s) => types(s).includes('disconnected'), 2_000, 'disconnected')
    // Made while away: its opening waits, and the lease runs out meanwhile.
    const late = c.process('late')
    const write = late.assert(kind, 'x', { by: 'late' })
    await until(async () => ds.stats.processes === 0, TTL + 2_000, 'the session expired')
    proxy.up()
    await status.until((s) => types(s).includes('session-lost'), 5_000, 'session-lost')
    const record = await write
    assert.equal(late.alive, true)
    assert.ok(late.id.startsWith(`${c.session.id}.`), late.id)
    assert.equal(record.owner, late.id)
    assert.equal((await ds.get(kind, 'x'))?.owner, late.id)
    assert.deepEqual(
      status.items.filter((s) => s.type === 'conflict'),
      [],
    )
    status.close()
  })

  it('closes at once while disconnected; the lease then ends the session', async () => {
    const kind = 'rc.close'
    const TTL = 300
    const c = await client(TTL)
    await c.session.assert(kind, 'x', {})
    proxy.down()
    await sleep(50)
    // It must not wait for the network (it used to, until the proxy came back).
    const outcome = await Promise.race([c.close().then(() => 'closed'), sleep(2_000)])
    assert.equal(outcome, 'closed')
    await assert.rejects(c.get(kind, 'x'), { code: 'Closed' })
    await until(async () => (await ds.get(kind, 'x')) === undefined, TTL + 1_000, 'lease expiry')
  })

  it('aborts a pending call with its signal, and never sends it', async () => {
    const kind = 'rc.abort'
    const c = await client()
    const status = new Collector<ClientStatus>(c.status())
    proxy.down()
    await status.until((s) => types(s).includes('disconnected'), 2_000, 'disconnected')
    const controller = new AbortController()
    const write = c.session.assert(kind, 'aborted', {}, { signal: controller.signal })
    const read = c.get(kind, 'aborted', { signal: controller.signal })
    const kept = c.session.assert(kind, 'kept', {})
    controller.abort()
    await assert.rejects(write, { name: 'AbortError' })
    await assert.rejects(read, { name: 'AbortError' })
    // An already-aborted signal rejects at once.
    await assert.rejects(c.list(kind, { signal: AbortSignal.abort() }), { name: 'AbortError' })
    proxy.up()
    assert.equal((await kept).id, 'kept')
    assert.equal(await ds.get(kind, 'aborted'), undefined)
    assert.deepEqual(
      (await ds.list(kind)).items.map((r) => r.id),
      ['kept'],
    )

    // Aborted while sent but unanswered: the call rejects at once; the connection stays usable.
    proxy.mute()
    const inFlight = new AbortController()
    const slow = c.list(kind, { signal: inFlight.signal })
    await sleep(50)
    inFlight.abort(new Error('gave up'))
    await assert.rejects(slow, /gave up/)
    proxy.cut()
    assert.equal((await c.get(kind, 'kept'))?.id, 'kept')
    status.close()
  })
})

/** Status types with repeats collapsed (one `disconnected` per failed reconnect attempt). */
