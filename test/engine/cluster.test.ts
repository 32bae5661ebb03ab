// Cluster nodes (docs/cluster.md, "The write turn"): several engines write ONE store, each in
// turns — take the store's turn lock, catch up from the feed, write, give it back — and follow
// the others' commits in between. The store is an in-memory stand-in for one PostgreSQL schema
// (shared-store.ts); the PostgreSQL side is tested in test/backends/postgres-cluster*.test.ts.
import assert from 'node:assert/strict'
import { createHook } from 'node:async_hooks'
import { describe, it } from 'node:test'
import { openDataspace } from '../../src/index.js'
import type { Dataspace, WatchEvent } from '../../src/index.js'
import { eventsUntil } from './helpers.js'
import { SharedStore } from './shared-store.js'

async function nodes(
  count: number,
  store = new SharedStore(),
  options: { durableTimeoutMs?: number } = {},
): Promise<{ store: SharedStore; nodes: Dataspace[] }> {
  const opened: Dataspace[] = []
  for (let i = 0; i < count; i++) {
    opened.push(await openDataspace({ backend: store.node(), followPollMs: 20, ...options }))
  }
  return { store, nodes: opened }
}

async function closeAll(list: readonly Dataspace[]): Promise<void> {
  await Promise.all(list.map((ds) => ds.close()))
}

/** Waits until every node has applied the store's revision. */
async function converged(store: SharedStore, list: readonly Dataspace[]): Promise<void> {
  const deadline = Date.now() + 5_000
  while (list.some((ds) => ds.revision !== store.revision)) {
    if (Date.now() > deadline) {
      throw new Error(
        `not converged: store ${store.revision}, nodes ${list.map((ds) => ds.revision).join(', ')}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function ids(ds: Dataspace, kind: string): Promise<string[]> {
  return (await ds.list(kind)).items.map((record) => record.id)
}

describe('cluster nodes', () => {
  it('every node writes, and each reads the others’ writes at the same revisions', async () => {
    const { store, nodes: all } = await nodes(3)
    const [a, b, c] = all as [Dataspace, Dataspace, Dataspace]
    const watch = c.watch('task')
    const first = await a.process('p').assert('task', 'from-a', { n: 1 })
    const second = await b.process('p').assert('task', 'from-b', { n: 2 })
    assert.equal(second.revision, first.revision + 1)
    await converged(store, all)
    for (const ds of all) assert.deepEqual(await ids(ds, 'task'), ['from-a', 'from-b'])
    const events = await eventsUntil(watch, second.revision)
    assert.deepEqual(
      events.map((event) => (event.type === 'asserted' ? [event.record.id, event.revision] : [])),
      [
        ['from-a', first.revision],
        ['from-b', second.revision],
      ],
    )
    // Pids and `$watch` ids carry each node's own (random) name: unique across the cluster.
    const pids = new Set(all.map((ds) => ds.process('x').id.split('/')[0]))
    assert.equal(pids.size, 3)
    const watchers = (await a.list('$watch')).items.map((record) => record.id)
    assert.equal(watchers.length, 1)
    assert.match(watchers[0] as string, /^node-[0-9a-f]{8}:w\d+$/)
    await watch.return()
    await closeAll(all)
  })

  it('concurrent compare-and-set from three nodes loses no update', async () => {
    const { store, nodes: all } = await nodes(3)
    const procs = all.map((ds) => ds.process('counter'))
    await procs[0]!.assert('counter', 'c', { n: 0 }, { owner: null })
    await converged(store, all)
    let applied = 0
    let conflicts = 0
    // Each node increments 20 times, reading then writing with ifRevision, all at once.
    await Promise.all(
      all.map(async (ds, i) => {
        for (let k = 0; k < 20; k++) {
          for (;;) {
            const current = await ds.get('counter', 'c')
            const n = (current?.data as { n: number }).n
            try {
              await procs[i]!.assert(
                'counter',
                'c',
                { n: n + 1 },
                { owner: null, ifRevision: current!.revision },
              )
              applied++
              break
            } catch (error) {
              if ((error as { code?: string }).code !== 'Conflict') throw error
              conflicts++
            }
          }
        }
      }),
    )
    await converged(store, all)
    for (const ds of all) {
      assert.deepEqual((await ds.get('counter', 'c'))?.data, { n: 60 })
    }
    assert.equal(applied, 60)
    assert.ok(store.turns > 1, 'the nodes took turns')
    assert.ok(conflicts >= 0)
    await closeAll(all)
  })

  it('claims from three nodes over one pool: every job once, none twice', async () => {
    const { store, nodes: all } = await nodes(3)
    const seeder = all[0]!.process('seed')
    for (let i = 0; i < 30; i++) {
      await seeder.assert(
        'job',
        `j${String(i).padStart(2, '0')}`,
        { state: 'new' },
        { owner: null },
      )
    }
    await converged(store, all)
    const claimed: string[] = []
    await Promise.all(
      all.map(async (ds) => {
        const worker = ds.process('worker')
        for (;;) {
          const job = await worker.claim('job', {
            fields: 'state=new',
            patch: { state: 'taken', by: worker.id },
          })
          if (job === undefined) return
          claimed.push(job.id)
        }
      }),
    )
    assert.equal(claimed.length, 30)
    assert.equal(new Set(claimed).size, 30)
    await converged(store, all)
    for (const ds of all) {
      const states = (await ds.list('job')).items.map((record) => record.data)
      assert.ok(states.every((data) => (data as { state: string }).state === 'taken'))
    }
    await closeAll(all)
  })

  it('a process’s exit on one node retracts its records on every node (owner-exit)', async () => {
    const { store, nodes: all } = await nodes(2)
    const [a, b] = all as [Dataspace, Dataspace]
    const proc = a.process('owner')
    await proc.assert('lease', 'l1', {})
    await converged(store, all)
    const watch = b.watch('lease')
    assert.deepEqual(await ids(b, 'lease'), ['l1'])
    await proc.exit()
    const [event] = await eventsUntil(watch, store.revision)
    assert.equal(event?.type, 'retracted')
    assert.equal(event?.type === 'retracted' && event.reason, 'owner-exit')
    await watch.return()
    await closeAll(all)
  })

  it('a record’s TTL is expired by a node other than its writer', async () => {
    const { store, nodes: all } = await nodes(2)
    const [a, b] = all as [Dataspace, Dataspace]
    await a.process('p').assert('ticket', 't', {}, { owner: null, ttl: 50 })
    await converged(store, all)
    await a.close()
    const watch = b.watch('ticket')
    const [event] = await eventsUntil(watch, store.revision + 1)
    assert.equal(event?.type === 'retracted' && event.reason, 'expired')
    assert.deepEqual(await ids(b, 'ticket'), [])
    await watch.return()
    await b.close()
  })

  it('an expiry waiting for the turn does not spin, and happens once the turn comes', async () => {
    const { store, nodes: all } = await nodes(1)
    const [a] = all as [Dataspace]
    await a.process('p').assert('ticket', 't', {}, { owner: null, ttl: 30 })
    const giveBack = store.steal()
    // A timer re-armed for the due (still queued) record would fire again and again, every ms.
    let timers = 0
    const hook = createHook({
      init: (_id, type) => {
        if (type === 'Timeout') timers++
      },
    }).enable()
    await new Promise((resolve) => setTimeout(resolve, 300))
    hook.disable()
    assert.ok(timers < 50, `${timers} timers in 300 ms while the turn was away`)
    assert.deepEqual(await ids(a, 'ticket'), ['t'])
    const watch = a.watch('ticket')
    giveBack()
    const [event] = await eventsUntil(watch, store.revision + 1)
    assert.equal(event?.type === 'retracted' && event.reason, 'expired')
    await watch.return()
    await a.close()
  })

  it('an expiry that waited for the turn re-arms for the earliest deadline, not a replicated later one', async () => {
    const { store, nodes: all } = await nodes(1)
    const [a] = all as [Dataspace]
    const proc = a.process('p')
    await proc.assert('ticket', 'x', {}, { owner: null, ttl: 80 })
    await proc.assert('ticket', 'z', {}, { owner: null, ttl: 300 })
    const giveBack = store.steal()
    // x falls due while the turn is away: its expiry waits. Meanwhile another node stores y,
    // which expires much later; A applies it when it catches up in its turn.
    await new Promise((resolve) => setTimeout(resolve, 150))
    const revision = store.revision + 1
    const y = {
      kind: 'ticket',
      id: 'y',
      data: {},
      labels: {},
      owner: null,
      revision,
      createdRevision: revision,
      expiresAt: Date.now() + 5_000,
    }
    await store.writer().write({
      id: 'other-node-1',
      commits: [{ revision, changes: [{ kind: 'ticket', id: 'y', after: y }] }],
      kinds: [],
      sessions: { put: [], delete: [] },
    })
    giveBack()
    const deadline = Date.now() + 1_500
    let left: string[] = []
    while (Date.now() < deadline) {
      left = [...store.records.values()].filter((r) => r.kind === 'ticket').map((r) => r.id)
      if (!left.includes('z')) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.deepEqual(left.sort(), ['y'], 'z expired at its deadline, not at y’s')
    await a.close()
  })

  it('a node opening and closing watches all the time does not keep the turn from the others', async () => {
    const { store, nodes: all } = await nodes(2, new SharedStore(), { durableTimeoutMs: 1_000 })
    const [a, b] = all as [Dataspace, Dataspace]
    store.writeDelayMs = 3
    let stop = false
    // Each watch opened or closed is a system write (its `$watch` record).
    const churn = (async () => {
      while (!stop) {
        const watch = a.watch('task')
        await new Promise((resolve) => setTimeout(resolve, 1))
        await watch.return()
      }
    })()
    const writes = (async () => {
      let n = 0
      while (!stop) await a.process('p').assert('task', `a${n++}`, {}, { owner: null })
    })()
    const turns = store.turns
    for (let i = 0; i < 20; i++) {
      await b.process('p').assert('task', `b${i}`, {}, { owner: null })
    }
    stop = true
    await Promise.all([churn, writes])
    assert.ok(store.turns - turns >= 20, 'the nodes took turns')
    await closeAll(all)
  })

  it('a node whose turn was away reports healthy again once it is back, without a write', async () => {
    const { store, nodes: all } = await nodes(1, new SharedStore(), { durableTimeoutMs: 200 })
    const [a] = all as [Dataspace]
    const giveBack = store.steal()
    await assert.rejects(a.process('p').assert('task', 't', {}), /write turn/)
    // The lock's own wait fails right after the writer's: the node reports it.
    const healthy = (): boolean | undefined => a.backendHealth?.ok
    const failing = Date.now() + 2_000
    while (healthy() !== false && Date.now() < failing) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.equal(healthy(), false)
    giveBack()
    const deadline = Date.now() + 5_000
    while (healthy() !== true && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(healthy(), true)
    await a.close()
  })

  it('a write waits for the turn, and fails Unavailable (not applied) when it never comes', async () => {
    const { store, nodes: all } = await nodes(1, new SharedStore(), { durableTimeoutMs: 200 })
    const [a] = all as [Dataspace]
    const giveBack = store.steal()
    const before = store.revision
    await assert.rejects(a.process('p').assert('task', 't', {}), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'Unavailable')
      assert.match(error.message, /write turn/)
      return true
    })
    assert.equal(a.revision, before, 'nothing was applied')
    giveBack()
    await a.process('p').assert('task', 't2', {})
    assert.deepEqual(await ids(a, 'task'), ['t2'])
    await a.close()
  })

  it('a node whose turn was taken from it loses only its unwritten commits, and starts over', async () => {
    const { store, nodes: all } = await nodes(2)
    const [a, b] = all as [Dataspace, Dataspace]
    await a.process('p').assert('task', 'kept', {}, { owner: null })
    await converged(store, all)
    const watch = a.watch('task')
    assert.equal((await watch.next()).value?.type, 'snapshot')
    // A read already waiting when A's write is dropped: it gets the start-over, not an error.
    const pending = watch.next()
    // A holds the turn and its write hangs (the database stalls); meanwhile A's lock connection
    // "drops": B takes the turn and writes first.
    let release!: () => void
    store.writeGate = new Promise((resolve) => (release = resolve))
    const lost = a.process('p').assert('task', 'lost', {}, { owner: null })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(store.holder, 1)
    const giveBack = store.steal()
    giveBack()
    store.writeGate = undefined
    const won = b.process('p').assert('task', 'won', {}, { owner: null })
    await new Promise((resolve) => setTimeout(resolve, 20))
    release()
    await won
    await assert.rejects(lost, (error: Error) => {
      assert.equal((error as { code?: string }).code, 'Unavailable')
      assert.match(error.message, /not applied/)
      return true
    })
    await converged(store, all)
    for (const ds of all) assert.deepEqual(await ids(ds, 'task'), ['kept', 'won'])
    // A's watcher never saw `lost`: it starts over from the store.
    const seen: WatchEvent[] = [(await pending).value!]
    for (;;) {
      const { value } = await watch.next()
      seen.push(value!)
      if (value?.type === 'snapshot') break
    }
    assert.deepEqual(
      seen.map((event) => event.type),
      ['reset', 'snapshot'],
    )
    const snapshot = seen[1] as Extract<WatchEvent, { type: 'snapshot' }>
    assert.deepEqual(
      snapshot.records.map((record) => record.id),
      ['kept', 'won'],
    )
    // And A writes again.
    await a.process('p').assert('task', 'after', {}, { owner: null })
    await converged(store, all)
    assert.deepEqual(await ids(b, 'task'), ['after', 'kept', 'won'])
    await watch.return()
    await closeAll(all)
  })
})
