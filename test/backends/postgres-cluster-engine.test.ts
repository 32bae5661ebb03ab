// Cluster nodes on real PostgreSQL (docs/cluster.md, "The write turn"): three dataspaces open
// one schema with `cluster: true`, and every one of them writes. One order for all: every
// node's watchers see the same events at the same revisions, compare-and-set loses no update,
// a claim or a name goes to one node only, and at the end of a randomized run every watcher's
// view equals `list()` on every node. (The engine's side against an in-memory store, including
// what happens when a node loses its turn: test/engine/cluster.test.ts.)
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { eventRow, random, read, rows, view } from './replica-views.js'

const schema = `ds_cluster_engine_${process.pid}`
let opened: Dataspace[] = []

async function open(): Promise<Dataspace> {
  const ds = await openDataspace({
    backend: postgresBackend({ url: POSTGRES_URL, schema, cluster: true }),
    // Polls rarely: other nodes' commits must arrive through the doorbell or a turn's catch-up.
    followPollMs: 60_000,
  })
  opened.push(ds)
  return ds
}

async function three(): Promise<Dataspace[]> {
  while (opened.length < 3) await open()
  return opened.slice(0, 3)
}

/** Waits until every node has applied `revision`. */
async function reach(nodes: readonly Dataspace[], revision: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (nodes.some((ds) => ds.revision < revision)) {
    if (Date.now() > deadline) {
      throw new Error(`nodes at ${nodes.map((ds) => ds.revision).join(', ')}, not ${revision}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('cluster nodes on PostgreSQL', { skip: postgresSkip }, () => {
  before(() => dropSchema(schema))
  after(async () => {
    await Promise.all(opened.map((ds) => ds.close()))
    opened = []
    await dropSchema(schema)
  })

  it('every node writes; every node’s watchers see the same events in one order', async () => {
    const nodes = await three()
    const watches = nodes.map((ds) => ds.watch('job'))
    const procs = nodes.map((ds) => ds.process('owner'))
    await Promise.all(procs.map((proc, i) => proc.assert('job', `n${i}`, { i })))
    await procs[0]!.retract('job', 'n0')
    await nodes[1]!.process('short').assert('job', 'ttl', { n: 3 }, { ttl: 30 })
    await new Promise((resolve) => setTimeout(resolve, 80))
    // Expiry waits for some node's turn; a read on each node asks for one.
    await Promise.all(nodes.map((ds) => ds.list('job')))
    await procs[2]!.exit()
    const head = Math.max(...nodes.map((ds) => ds.revision))
    await reach(nodes, head)
    const seen = await Promise.all(watches.map((watch) => read(watch, head)))
    const expected = seen[0]!.events.map(eventRow)
    assert.ok(
      expected.some((row) => row.includes(':expired@')),
      expected.join(' '),
    )
    assert.ok(
      expected.some((row) => row.includes(':owner-exit@')),
      expected.join(' '),
    )
    for (const other of seen.slice(1)) assert.deepEqual(other.events.map(eventRow), expected)
    const listed = rows((await nodes[0]!.list('job')).items)
    for (const ds of nodes) assert.deepEqual(rows((await ds.list('job')).items), listed)
    await Promise.all(watches.map((watch) => watch.return()))
    await Promise.all(procs.slice(0, 2).map((proc) => proc.exit()))
  })

  it('compare-and-set from three nodes at once loses no update', async () => {
    const nodes = await three()
    const procs = nodes.map((ds) => ds.process('counter'))
    await procs[0]!.assert('counter', 'c', { n: 0 }, { owner: null })
    await reach(nodes, nodes[0]!.revision)
    const rounds = 15
    await Promise.all(
      nodes.map(async (ds, i) => {
        for (let k = 0; k < rounds; k++) {
          for (;;) {
            const current = (await ds.get('counter', 'c'))!
            try {
              await procs[i]!.assert(
                'counter',
                'c',
                { n: (current.data as { n: number }).n + 1 },
                { owner: null, ifRevision: current.revision },
              )
              break
            } catch (error) {
              if ((error as { code?: string }).code !== 'Conflict') throw error
            }
          }
        }
      }),
    )
    const head = Math.max(...nodes.map((ds) => ds.revision))
    await reach(nodes, head)
    for (const ds of nodes) assert.deepEqual((await ds.get('counter', 'c'))?.data, { n: 45 })
    await Promise.all(procs.map((proc) => proc.exit()))
  })

  it('claims from three nodes over one pool: no job twice; a name race has one winner', async () => {
    const nodes = await three()
    const seeder = nodes[0]!.process('seed')
    await seeder.transact({
      then: Array.from({ length: 30 }, (_, i) => ({
        op: 'assert' as const,
        kind: 'pool',
        id: `j${String(i).padStart(2, '0')}`,
        data: { state: 'new' },
        owner: null,
      })),
    })
    await reach(nodes, nodes[0]!.revision)
    const claimed: string[][] = [[], [], []]
    await Promise.all(
      nodes.map(async (ds, i) => {
        const worker = ds.process('worker')
        for (;;) {
          const job = await worker.claim('pool', {
            fields: 'state=new',
            patch: { state: 'taken', by: worker.id },
          })
          if (job === undefined) break
          claimed[i]!.push(job.id)
        }
        await worker.exit()
      }),
    )
    const all = claimed.flat()
    assert.equal(all.length, 30)
    assert.equal(new Set(all).size, 30)
    const racers = nodes.map((ds) => ds.process('racer'))
    const results = await Promise.allSettled(
      racers.map((proc, i) => nodes[i]!.names.register(proc, 'leader')),
    )
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1)
    for (const result of results) {
      if (result.status === 'rejected') {
        assert.equal((result.reason as { code?: string }).code, 'NameTaken')
      }
    }
    const head = Math.max(...nodes.map((ds) => ds.revision))
    await reach(nodes, head)
    const holders = await Promise.all(nodes.map((ds) => ds.names.whereis('leader')))
    assert.ok(holders.every((holder) => holder?.pid === holders[0]?.pid))
    await Promise.all(racers.map((proc) => proc.exit()))
  })

  it('randomized: every node’s watcher view equals list() on every node', async () => {
    const nodes = await three()
    for (const seed of [1, 2]) {
      const next = random(seed)
      const kind = `rand${seed}`
      const watches = nodes.map((ds) => ds.watch(kind))
      const procs = nodes.flatMap((ds) => [ds.process('p0'), ds.process('p1')])
      const nodeOf = (p: number): Dataspace => nodes[Math.floor(p / 2)]!
      for (let step = 0; step < 60; step++) {
        // A few writes at once, from processes on different nodes: they contend for turns.
        const burst: Promise<unknown>[] = []
        for (let k = 0; k < 4; k++) {
          const p = Math.floor(next() * procs.length)
          const proc = procs[p]!
          const id = `r${Math.floor(next() * 8)}`
          const roll = next()
          const refused = (): undefined => undefined
          if (roll < 0.5) burst.push(proc.assert(kind, id, { step, k }).catch(refused))
          else if (roll < 0.7) burst.push(proc.retract(kind, id).catch(refused))
          else if (roll < 0.8) {
            burst.push(proc.assert(kind, id, { step }, { ttl: 5 }).catch(refused))
          } else if (roll < 0.9) {
            const fresh = nodeOf(p).process(`p${p}`)
            procs[p] = fresh
            burst.push(proc.exit())
          } else {
            burst.push(
              proc
                .transact({
                  then: [
                    { op: 'assert', kind, id, data: { step } },
                    { op: 'assert', kind, id: `${id}x`, data: { step } },
                  ],
                })
                .catch(refused),
            )
          }
        }
        await Promise.all(burst)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
      await Promise.all(nodes.map((ds) => ds.list(kind)))
      // Expiries ride on turns: wait until no node has one left to take.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await nodes[0]!.process('marker').assert(kind, 'zz-marker', {}, { owner: null })
      const head = Math.max(...nodes.map((ds) => ds.revision))
      await reach(nodes, head)
      const seen = await Promise.all(watches.map((watch) => read(watch, head)))
      const listed = rows((await nodes[0]!.list(kind)).items)
      seen.forEach((one, i) => {
        assert.deepEqual(
          view(one.snapshot, one.events),
          listed,
          `seed ${seed}: node ${i}'s watcher`,
        )
        assert.deepEqual(
          one.events.map(eventRow),
          seen[0]!.events.map(eventRow),
          `seed ${seed}: node ${i}'s events`,
        )
      })
      for (const ds of nodes) {
        assert.deepEqual(rows((await ds.list(kind)).items), listed, `seed ${seed}: list`)
      }
      await Promise.all(watches.map((watch) => watch.return()))
      await Promise.all(procs.map((proc) => proc.exit()))
    }
  })
})
