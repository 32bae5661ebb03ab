// Real OS processes: a client killed with SIGKILL, a connection cut by a TCP proxy, a server
// process restarted on the same port. Everything talks to 127.0.0.1 and stops by itself.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { connect } from '../../src/client/index.js'
import type { ClientStatus, DataspaceClient } from '../../src/client/index.js'
import type { WatchEvent } from '../../src/index.js'
import {
  Collector,
  freePort,
  materialise,
  sleep,
  spawnTsx,
  startServerProcess,
  TcpProxy,
  types,
} from './helpers.js'
import type { Child } from './helpers.js'

const FAST = { initialMs: 20, maxMs: 200 }

describe('chaos: real processes', () => {
  let port: number
  let server: Child & { url: string }
  const clients: DataspaceClient[] = []
  const children: Child[] = []

  const client = async (url: string, name: string, ttl = 5_000): Promise<DataspaceClient> => {
    const c = await connect(url, { name, ttl, backoff: FAST })
    clients.push(c)
    return c
  }

  before(async () => {
    port = await freePort()
    server = await startServerProcess(port)
  })

  after(async () => {
    // Bounded: a client cut off from the server cannot end its session there.
    await Promise.race([Promise.all(clients.map((c) => c.close().catch(() => {}))), sleep(2_000)])
    for (const child of children) await child.kill()
    await server.kill()
  })

  it('retracts a SIGKILLed client process’s records (owner-exit) within TTL + 1 s', async () => {
    const TTL = 1_000
    const kind = 'chaos.killed'
    const watcher = await client(server.url, 'watcher')
    const events = new Collector<WatchEvent>(watcher.watch(kind))
    const doomed = spawnTsx(['test/client/fixtures/asserting-client.ts'], {
      DATASPACE_URL: server.url,
      KIND: kind,
      COUNT: '3',
      TTL: String(TTL),
    })
    children.push(doomed)
    await doomed.waitFor(/^ready /m, 15_000)
    await events.until((e) => materialise(e).size === 3, 5_000, 'the 3 records')

    process.kill(doomed.pid, 'SIGKILL')
    const killedAt = Date.now()
    await doomed.kill() // waits for the exit
    const retracted = (e: readonly WatchEvent[]): WatchEvent[] =>
      e.filter((x) => x.type === 'retracted')
    await events.until((e) => retracted(e).length === 3, TTL + 1_000, 'retraction after SIGKILL')
    assert.ok(Date.now() - killedAt <= TTL + 1_000)
    for (const event of retracted(events.items)) {
      assert.equal(event.type === 'retracted' && event.reason, 'owner-exit')
    }
    assert.equal(materialise(events.items).size, 0)
    events.close()
  })

  it('keeps the records of a client whose connection is cut and comes back within the TTL', async () => {
    const kind = 'chaos.cut'
    const proxy = await TcpProxy.start(port)
    try {
      const watcher = await client(server.url, 'watcher')
      const events = new Collector<WatchEvent>(watcher.watch(kind))
      const cut = await client(proxy.url, 'cut', 3_000)
      const status = new Collector<ClientStatus>(cut.status())
      await cut.session.assert(kind, 'a', { n: 1 })
      await cut.session.assert(kind, 'b', { n: 2 })
      await events.until((e) => materialise(e).size === 2, 5_000, 'the 2 records')

      // A cut, then a short outage (well inside the 3 s lease), then the network is back.
      proxy.cut()
      await status.until((s) => types(s).includes('reconnected'), 2_000, 'reconnect after cut')
      proxy.down()
      await sleep(300)
      proxy.up()
      await status.until(
        (s) => types(s).filter((t) => t === 'reconnected').length === 2,
        3_000,
        'reconnect after outage',
      )
      // Every failed attempt while the proxy refuses is reported; count the transitions.
      assert.deepEqual(types(status.items), [
        'disconnected',
        'reconnected',
        'disconnected',
        'reconnected',
      ])
      // Still the same session, still owning both records; it can keep writing.
      const sessionPid = cut.session.id
      const again = await cut.session.assert(kind, 'c', { n: 3 })
      assert.equal(again.owner, sessionPid)
      await events.until((e) => materialise(e).size === 3, 2_000, 'the 3rd record')
      assert.ok(!events.items.some((e) => e.type === 'retracted'), 'no record was retracted')
      const listed = await watcher.list(kind)
      assert.deepEqual(
        listed.items.map((r) => [r.id, r.owner]),
        [
          ['a', sessionPid],
          ['b', sessionPid],
          ['c', sessionPid],
        ],
      )
      events.close()
      status.close()
    } finally {
      // Clients behind the proxy end their sessions while it still forwards.
      proxy.up()
      await Promise.race([Promise.all(clients.map((c) => c.close().catch(() => {}))), sleep(2_000)])
      await proxy.close()
    }
  })

  it('restores records after a server restart and keeps an open watch correct', async () => {
    const kind = 'chaos.restart'
    // The watcher's network is down across the restart (it comes back after the others have
    // restored), so its watch resumes on a server whose history is not the one it saw.
    const proxy = await TcpProxy.start(port)
    try {
      const watcher = await client(proxy.url, 'watcher')
      const events = new Collector<WatchEvent>(watcher.watch(kind))
      const watcherStatus = new Collector<ClientStatus>(watcher.status())
      const a = await client(server.url, 'a')
      const b = await client(server.url, 'b')
      const statusA = new Collector<ClientStatus>(a.status())
      const statusB = new Collector<ClientStatus>(b.status())
      for (let i = 0; i < 3; i++) await a.session.assert(kind, `a${i}`, { from: 'a', i })
      const worker = b.process('worker')
      await worker.assert(kind, 'b0', { from: 'b' })
      await b.session.assert(kind, 'b1', { from: 'b' })
      // Commits the watch does not see: the new server's revisions run past the watch's.
      for (let i = 0; i < 30; i++) await a.session.assert('chaos.other', `o${i}`, { i })
      await events.until((e) => materialise(e).size === 5, 5_000, 'the 5 records')

      proxy.down()
      await server.kill('SIGKILL')
      server = await startServerProcess(port)

      const lost = (s: readonly ClientStatus[]): boolean => types(s).includes('session-lost')
      await statusA.until(lost, 10_000, 'a: session-lost')
      await statusB.until(lost, 10_000, 'b: session-lost')
      for (const status of [statusA, statusB]) {
        assert.deepEqual(types(status.items), ['disconnected', 'session-lost'])
      }
      const restoredA = statusA.items.find((s) => s.type === 'session-lost')
      const restoredB = statusB.items.find((s) => s.type === 'session-lost')
      assert.equal(restoredA?.type === 'session-lost' && restoredA.restored, 33)
      // b's worker is re-opened under a new pid, then its record and the session's restored.
      assert.equal(restoredB?.type === 'session-lost' && restoredB.restored, 3)
      proxy.up()
      await watcherStatus.until(lost, 10_000, 'watcher: session-lost')

      // The server's truth after the restore: every record back, owned by the new pids.
      const expected = [
        ['a0', a.session.id],
        ['a1', a.session.id],
        ['a2', a.session.id],
        ['b0', worker.id],
        ['b1', b.session.id],
      ]
      const listed = await watcher.list(kind)
      assert.deepEqual(
        listed.items.map((r) => [r.id, r.owner]),
        expected,
      )
      // The watch went on over the restart, and what it materialises is that same state.
      const current = (): string =>
        JSON.stringify(
          [...materialise(events.items).values()]
            .map((r) => [r.id, r.owner])
            .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
        )
      await events
        .until(
          () => current() === JSON.stringify(expected),
          5_000,
          `watch state ${JSON.stringify(expected)}`,
        )
        .catch((error: unknown) => {
          throw new Error(`${String(error)}; got ${current()}`)
        })
      assert.ok(!events.ended)
      // And it stays live: a write after the restart arrives too.
      await a.session.assert(kind, 'a3', { from: 'a', i: 3 })
      await events.until((e) => materialise(e).has('a3'), 2_000, 'a write after the restart')
      for (const c of [events, watcherStatus, statusA, statusB]) c.close()
    } finally {
      // Clients behind the proxy end their sessions while it still forwards.
      proxy.up()
      await Promise.race([Promise.all(clients.map((c) => c.close().catch(() => {}))), sleep(2_000)])
      await proxy.close()
    }
  })
})
