// A session whose client left a cluster node (docs/cluster.md, "Sessions in the store"): when
// its lease on that node runs out, the node does not retract what it owned itself — another
// node may have taken it over meanwhile — but runs its lease in the store out, and a reaper
// retracts. The store is the in-memory stand-in for one PostgreSQL schema
// (test/engine/shared-store.ts).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { SessionTable } from '../../src/server/session-table.js'
import { SharedStore } from '../engine/shared-store.js'

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function twoNodes(): Promise<{ store: SharedStore; a: Dataspace; b: Dataspace }> {
  const store = new SharedStore()
  const a = await openDataspace({ backend: store.node(), followPollMs: 20, log: { warn() {} } })
  const b = await openDataspace({ backend: store.node(), followPollMs: 20, log: { warn() {} } })
  return { store, a, b }
}

describe('a session whose client left a cluster node', () => {
  it('taken over by another node meanwhile: the node it left retracts nothing', async () => {
    const { store, a, b } = await twoNodes()
    const table = new SessionTable(a, 300, { min: 100, max: 60_000 })
    const session = table.open('agent', 300)
    await session.process.assert('task', 'kept', { n: 1 })
    await until('stored', () => store.sessions.has(session.id))
    // A cannot renew (cut off from the store), so it does not learn of the move below.
    store.renewalsCutOff.add(a.node)
    const hash = createHash('sha256').update(session.resumeToken).digest('hex')
    const taken = await b.takeOverSession(session.id, { resumeTokenHash: hash })
    assert.equal(taken?.session.pid, session.process.id)
    // A's own lease for it runs out (no client touches it there): it is released, not exited.
    assert.equal(await session.process.exited, 'lease-expired')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    await until('B converges', () => b.revision === store.revision)
    assert.equal((await b.get('task', 'kept'))?.owner, session.process.id)
    assert.equal(store.sessions.get(session.id)?.node, b.node)
    await a.close()
    await b.close()
  })

  it('not taken over: its lease in the store runs out and a reaper retracts what it owned', async () => {
    const { store, a, b } = await twoNodes()
    const table = new SessionTable(a, 300, { min: 100, max: 60_000 })
    const session = table.open('agent', 300)
    await session.process.assert('task', 'gone', { n: 1 })
    await until('stored', () => store.sessions.has(session.id))
    assert.equal(await session.process.exited, 'lease-expired')
    await until('reaped', () => !store.sessions.has(session.id), 3_000)
    await until('retracted on B', () => b.revision === store.revision)
    assert.equal(await b.get('task', 'gone'), undefined)
    await a.close()
    await b.close()
  })
})
