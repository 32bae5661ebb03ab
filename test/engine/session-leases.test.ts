// Sessions in the store (docs/cluster.md, "Sessions in the store"): a cluster node's stored
// sessions have leases on the store's clock; the node renews them, any node reaps one whose
// lease ran out (one owner-exit commit that deletes it), and the store refuses a commit of a
// session the node no longer holds. The store is the in-memory stand-in for one PostgreSQL
// schema (shared-store.ts); the PostgreSQL side is tested in
// test/backends/postgres-session-leases.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openDataspace } from '../../src/index.js'
import type { Dataspace, WatchEvent } from '../../src/index.js'
import { nextEvent } from './helpers.js'
import { SharedStore, storeSession } from './shared-store.js'

async function twoNodes(): Promise<{ store: SharedStore; a: Dataspace; b: Dataspace }> {
  const store = new SharedStore()
  const a = await openDataspace({ backend: store.node(), followPollMs: 20 })
  const b = await openDataspace({ backend: store.node(), followPollMs: 20 })
  return { store, a, b }
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('sessions in the store (cluster nodes)', () => {
  it('a session is stored with its node and kept alive by renewals', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('agent')
    const session = storeSession(a, proc, 300)
    await proc.assert('task', 't1', { n: 1 })
    await until('the session is stored', () => store.sessions.has(session.id))
    // Three leases long: only renewals keep it.
    await new Promise((resolve) => setTimeout(resolve, 900))
    const lease = store.sessions.get(session.id)
    assert.ok(lease !== undefined && lease.expiresAt > Date.now(), 'renewed')
    assert.ok(proc.alive)
    assert.equal((await b.get('task', 't1'))?.owner, proc.id)
    await a.close()
    await b.close()
  })

  it('a session whose lease ran out is reaped by another node in one owner-exit commit', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('agent')
    const session = storeSession(a, proc, 60_000)
    await proc.assert('task', 't1', { n: 1 })
    const last = await proc.assert('task', 't2', { n: 2 })
    await until('the session is stored', () => store.sessions.has(session.id))
    const watch = b.watch('task', { fromRevision: last.revision })
    // Node A stops renewing it (as if cut off from the store): the lease runs out.
    store.expire(session.id)
    await until('the session is reaped', () => !store.sessions.has(session.id))
    // One commit (B's `$watch` record was written after `last`).
    const reap = store.feed.find((commit) => commit.changes.some((c) => c.reason === 'owner-exit'))
    assert.ok(reap !== undefined)
    assert.deepEqual(
      reap.changes.map((change) => [change.id, change.reason]),
      [
        ['t1', 'owner-exit'],
        ['t2', 'owner-exit'],
      ],
    )
    // Node B's watcher sees both, at that revision.
    const retracted: WatchEvent[] = []
    while (retracted.length < 2) {
      const event = await nextEvent(watch)
      if (event.type === 'retracted') retracted.push(event)
    }
    assert.deepEqual(
      retracted.map((event) => event.type === 'retracted' && [event.record.id, event.revision]),
      [
        ['t1', reap.revision],
        ['t2', reap.revision],
      ],
    )
    // Node A finds the session lost at its next renewal: its process ends, with no commit.
    await until('node A ends the lost session', () => !proc.alive)
    assert.equal(await proc.exited, 'lease-expired')
    assert.equal(store.revision, reap.revision, 'no commit of A for the lost session')
    await watch.return()
    await a.close()
    await b.close()
  })

  it('refuses a write of a session whose lease ran out: nothing of it is applied', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('agent')
    const session = storeSession(a, proc, 60_000)
    const first = await proc.assert('task', 't1', { n: 1 })
    await until('the session is stored', () => store.sessions.has(session.id))
    store.expire(session.id)
    await assert.rejects(proc.assert('task', 't9', { n: 9 }), { code: 'ProcessExited' })
    assert.equal(store.records.has(JSON.stringify(['task', 't9'])), false)
    await until('node A converges', () => a.revision === store.revision)
    assert.equal(await a.get('task', 't9'), undefined, 'undone on the writing node too')
    assert.equal(await b.get('task', 't9'), undefined)
    assert.ok(store.revision > first.revision)
    await a.close()
    await b.close()
  })

  it('reaps a session that owned nothing: its row goes, in an empty commit', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('idle')
    const session = storeSession(a, proc, 60_000)
    await until('the session is stored', () => store.sessions.has(session.id))
    const before = store.revision
    store.expire(session.id)
    await until('the session is reaped', () => !store.sessions.has(session.id))
    assert.equal(store.revision, before + 1)
    assert.deepEqual(store.feed.at(-1)?.changes, [])
    await a.close()
    await b.close()
  })

  it('sessions put faster than the renewal period do not postpone it', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('steady')
    const session = storeSession(a, proc, 60_000)
    await until('the session is stored', () => store.sessions.has(session.id))
    const before = store.renewals
    // A short-lease session put every 300 ms (its children coming and going): each put asks
    // for a renewal within 667 ms, and none may push the next one back.
    const churn = a.process('churn')
    const short = storeSession(a, churn, 2_000)
    for (let i = 0; i < 10; i++) {
      a.storage?.putSession({ ...short, lastChild: i })
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    assert.ok(store.renewals - before >= 3, `${store.renewals - before} renewals in 3 s`)
    await a.close()
    await b.close()
  })

  it('a reaper’s empty commit refused because the lease came back is not retried forever', async () => {
    const { store, a, b } = await twoNodes()
    // A session of a node that is not here (no renewal of ours judges it), owning nothing,
    // whose lease ran out.
    store.sessions.set('ghost-session', {
      session: {
        id: 'ghost-session',
        resumeTokenHash: '00',
        pid: 'ghost/1',
        name: 'ghost',
        ttl: 60_000,
        children: [],
        lastChild: 0,
        principal: null,
      },
      node: 'ghost',
      expiresAt: Date.now(),
    })
    // Writes wait: a node claims it and stages its reap; then the lease comes back (a renewal
    // that committed after the claim), and the write is refused.
    let open = (): void => {}
    store.writeGate = new Promise((resolve) => (open = resolve))
    const turns = store.turns
    await until('a node takes a turn to reap it', () => store.turns > turns, 3_000)
    store.sessions.get('ghost-session')!.expiresAt = Date.now() + 60_000
    store.writeGate = undefined
    open()
    // The refused reap is stored empty, and the turn goes round: another write gets through.
    const written = await b.process('next').assert('task', 'after', {})
    assert.ok(written.revision > 0)
    assert.ok(store.sessions.has('ghost-session'), 'the live session is not reaped')
    await a.close()
    await b.close()
  })

  it('another node takes a session over; the node it left keeps its records when it starts over', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('mover')
    const session = storeSession(a, proc, 60_000)
    await proc.assert('task', 'moved', {})
    await until('the session is stored', () => store.sessions.has(session.id))
    const taken = await b.takeOverSession(session.id, { resumeTokenHash: '00' })
    assert.equal(taken?.session.pid, proc.id)
    assert.equal(store.sessions.get(session.id)?.node, b.node)
    assert.equal(b.processById(proc.id)?.alive, true, 'served on B, same pid')
    // A finds it gone at its next renewal: it drops it, retracting nothing.
    await until('node A drops it', () => !proc.alive)
    // Then A's unwritten commits are dropped (B wrote first) and A starts over from the store:
    // a pid of A's that is not alive on A is not dead (B serves it).
    let release!: () => void
    store.writeGate = new Promise((resolve) => (release = resolve))
    const lost = a.process('p').assert('task', 'lost', {}, { owner: null })
    await new Promise((resolve) => setTimeout(resolve, 20))
    store.steal()()
    store.writeGate = undefined
    await b.process('p').assert('task', 'won', {}, { owner: null })
    release()
    await assert.rejects(lost, { code: 'Unavailable' })
    await a.process('p').assert('task', 'after', {}, { owner: null })
    await until(
      'both nodes converge',
      () => a.revision === store.revision && b.revision === store.revision,
    )
    for (const ds of [a, b]) assert.equal((await ds.get('task', 'moved'))?.owner, proc.id)
    await a.close()
    await b.close()
  })

  it('a session that ended on its node is deleted, and what it owned with it', async () => {
    const { store, a, b } = await twoNodes()
    const proc = a.process('agent')
    const session = storeSession(a, proc, 60_000)
    await proc.assert('task', 't1', { n: 1 })
    await until('the session is stored', () => store.sessions.has(session.id))
    await proc.exit()
    a.storage?.deleteSession(session.id)
    await until('the session is deleted', () => !store.sessions.has(session.id))
    await until('node B converges', () => b.revision === store.revision)
    assert.equal(await b.get('task', 't1'), undefined)
    await a.close()
    await b.close()
  })
})
