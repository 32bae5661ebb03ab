// Followers on real PostgreSQL (docs/cluster.md, "Followers"): a writer dataspace and follower
// dataspaces on one schema. Every follower's watchers see exactly the writer's events, in the
// same revision order, and a watcher's view equals `list()` on every node at the end of a
// randomized run.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { TcpProxy, until } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { eventRow, random, read, rows, view } from './replica-views.js'

const schema = `ds_follow_engine_${process.pid}`
let opened: Dataspace[] = []

async function open(follow: boolean): Promise<Dataspace> {
  const ds = await openDataspace({
    backend: postgresBackend({ url: POSTGRES_URL, schema, follow }),
    // Polls rarely: commits must reach the followers through the doorbell.
    ...(follow ? { followPollMs: 60_000 } : {}),
  })
  opened.push(ds)
  return ds
}

describe('followers on PostgreSQL', { skip: postgresSkip }, () => {
  before(() => dropSchema(schema))
  after(async () => {
    await Promise.all(opened.map((ds) => ds.close()))
    opened = []
    await dropSchema(schema)
  })

  it('two followers see the writer’s events, in order, with the same reasons', async () => {
    const writer = await open(false)
    const followers = [await open(true), await open(true)]
    const watches = [writer, ...followers].map((ds) => ds.watch('job'))
    const owner = writer.process('owner')
    await owner.assert('job', 'a', { n: 1 })
    await owner.assert('job', 'b', { n: 2 })
    await owner.retract('job', 'a')
    await writer.process('short').assert('job', 'ttl', { n: 3 }, { ttl: 30 })
    await new Promise((resolve) => setTimeout(resolve, 80))
    await writer.list('job')
    await owner.exit()
    const head = writer.revision
    const [mine, ...theirs] = await Promise.all(watches.map((watch) => read(watch, head)))
    const expected = mine!.events.map(eventRow)
    assert.ok(expected.some((row) => row.includes(':expired@')))
    assert.ok(expected.some((row) => row.includes(':owner-exit@')))
    for (const seen of theirs) assert.deepEqual(seen.events.map(eventRow), expected)
    for (const follower of followers) {
      assert.equal(follower.revision, head)
      assert.deepEqual(
        rows((await follower.list('job')).items),
        rows((await writer.list('job')).items),
      )
    }
    await Promise.all(watches.map((watch) => watch.return()))
  })

  it('randomized: every node’s watcher view equals list() on every node', async () => {
    const writer = opened[0] ?? (await open(false))
    const follower = opened[1] ?? (await open(true))
    for (const seed of [1, 2, 3]) {
      const next = random(seed)
      const kind = `rand${seed}`
      const watches = [writer.watch(kind), follower.watch(kind)]
      const procs = [writer.process('p0'), writer.process('p1'), writer.process('p2')]
      const bucket = writer.kv(`b${seed}`)
      for (let step = 0; step < 250; step++) {
        const p = Math.floor(next() * procs.length)
        const proc = procs[p]!
        const id = `r${Math.floor(next() * 8)}`
        const roll = next()
        // Another process may own the id: its refusal (Conflict) changes nothing.
        const refused = (): undefined => undefined
        if (roll < 0.5) await proc.assert(kind, id, { step }).catch(refused)
        else if (roll < 0.7) await proc.retract(kind, id).catch(refused)
        else if (roll < 0.8) await bucket.put(id, step)
        else if (roll < 0.85) await bucket.delete(id)
        else if (roll < 0.9) await proc.assert(kind, id, { step }, { ttl: 5 }).catch(refused)
        else if (roll < 0.95) {
          await proc.exit()
          procs[p] = writer.process(`p${p}`)
        } else {
          await proc
            .transact({
              then: [
                { op: 'assert', kind, id, data: { step } },
                { op: 'assert', kind, id: `${id}x`, data: { step } },
              ],
            })
            .catch(refused)
        }
      }
      // Expired records go in a commit of their own when the writer next looks.
      await new Promise((resolve) => setTimeout(resolve, 20))
      await writer.list(kind)
      // A last commit in this kind, so that both watchers know when they have seen everything.
      await writer.process('marker').assert(kind, 'zz-marker', {}, { owner: null })
      const head = writer.revision
      const [mine, theirs] = await Promise.all(watches.map((watch) => read(watch, head)))
      const listed = rows((await writer.list(kind)).items)
      assert.deepEqual(view(mine!.snapshot, mine!.events), listed, `seed ${seed}: writer's watcher`)
      assert.deepEqual(
        view(theirs!.snapshot, theirs!.events),
        listed,
        `seed ${seed}: follower's watcher`,
      )
      assert.deepEqual(
        rows((await follower.list(kind)).items),
        listed,
        `seed ${seed}: follower list`,
      )
      assert.deepEqual(theirs!.events.map(eventRow), mine!.events.map(eventRow), `seed ${seed}`)
      const entries = async (ds: Dataspace): Promise<string[]> =>
        (await ds.kv(`b${seed}`).scan()).entries.map((e) => `${e.key}=${JSON.stringify(e.value)}`)
      assert.deepEqual(await entries(follower), await entries(writer), `seed ${seed}: kv entries`)
      await Promise.all(watches.map((watch) => watch.return()))
      await Promise.all(procs.map((proc) => proc.exit()))
    }
  })

  it('a follower started later loads the state and follows from there', async () => {
    const writer = opened[0] ?? (await open(false))
    await writer.process('late').assert('job', 'before-start', { n: 1 })
    const late = await open(true)
    assert.equal(late.revision, writer.revision)
    assert.equal((await late.get('job', 'before-start'))?.id, 'before-start')
    const watch = late.watch('job')
    await writer.process('late2').assert('job', 'after-start', { n: 2 })
    const { events } = await read(watch, writer.revision)
    assert.deepEqual(events.map(eventRow), [`+after-start@${writer.revision}`])
    await watch.return()
  })

  it('a follower cut off past the feed’s floor starts over: reset + snapshot, then follows', async () => {
    const own = `${schema}_trim`
    await dropSchema(own)
    const backend = postgresBackend({
      url: POSTGRES_URL,
      schema: own,
      feedMaxRevisions: 1,
      feedTrimIntervalMs: Infinity,
    })
    const writer = await openDataspace({ backend })
    const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
    const proxied = new URL(POSTGRES_URL)
    proxied.host = new URL(proxy.url).host
    const follower = await openDataspace({
      backend: postgresBackend({ url: proxied.toString(), schema: own, follow: true }),
      followPollMs: 50,
      log: { warn: () => undefined },
    })
    try {
      const w = writer.process('w')
      await w.assert('job', 'a', { n: 1 })
      const watch = follower.watch('job')
      await read(watch, writer.revision)
      proxy.down()
      await w.retract('job', 'a')
      await w.assert('job', 'b', { n: 2 })
      await w.assert('job', 'c', { n: 3 })
      assert.ok(
        (await backend.trimFeed()).floor > follower.revision,
        'the feed was trimmed past it',
      )
      proxy.up()
      let reset: unknown
      for (;;) {
        const { value } = await watch.next()
        if (value?.type === 'reset') reset = value
        if (value?.type === 'snapshot') {
          assert.deepEqual(
            value.records.map((r) => r.id),
            ['b', 'c'],
          )
          break
        }
      }
      assert.deepEqual(reset, { type: 'reset', reason: 'history-gone' })
      await w.assert('job', 'd', { n: 4 })
      const { events } = await read(watch, writer.revision)
      assert.deepEqual(events.map(eventRow), [`+d@${writer.revision}`])
      await until(() => follower.backendHealth?.ok === true, 10_000, 'healthy again')
      await watch.return()
    } finally {
      proxy.up()
      await follower.close()
      await writer.close()
      await proxy.close()
      await dropSchema(own)
    }
  })
})
