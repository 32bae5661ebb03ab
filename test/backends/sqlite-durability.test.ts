// The SQLite backend through the public API: what is acknowledged survives a reopen, a
// process's records do not outlive it, indexes survive, and one turn is one transaction.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend, WriteBatch } from '../../src/backends/index.js'
import { createDataspace, openDataspace } from '../../src/index.js'
import { SessionStore } from '../../src/server/session-store.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const file = (): string => join(dir, `db-${++files}.sqlite`)

/** A backend that counts batches and can hold them back, around a real SQLite backend. */
function spied(path: string): Backend & {
  openSync(): ReturnType<ReturnType<typeof sqliteBackend>['openSync']>
  batches: WriteBatch[]
  hold: Promise<void> | undefined
} {
  const inner = sqliteBackend({ path })
  const spy = {
    ...inner,
    batches: [] as WriteBatch[],
    hold: undefined as Promise<void> | undefined,
    async write(batch: WriteBatch) {
      spy.batches.push(batch)
      if (spy.hold !== undefined) await spy.hold
      await inner.write(batch)
    },
  }
  return spy
}

describe('sqlite backend: durability through the dataspace', () => {
  it('keeps acknowledged records, kinds and the revision across a reopen', async () => {
    const path = file()
    const ds = createDataspace({ backend: sqliteBackend({ path }) })
    await ds.defineKind('substrate.worker', { indexes: ['pool'] })
    const p = ds.process('writer')
    await p.assert(
      'substrate.worker',
      'w1',
      { pool: 'cpu' },
      { owner: null, labels: { zone: 'a' } },
    )
    await p.assert('substrate.worker', 'w2', { pool: 'gpu' }, { owner: null })
    await p.transact({
      then: [
        { op: 'assert', kind: 'cfg', id: 'a', data: 1, owner: null },
        { op: 'assert', kind: 'cfg', id: 'b', data: 2, owner: null },
      ],
    })
    await ds.kv('settings').put('mode', 'fast')
    const revision = ds.revision
    await ds.close()

    const again = createDataspace({ backend: sqliteBackend({ path }) })
    assert.equal(again.revision, revision)
    const w1 = await again.get('substrate.worker', 'w1')
    assert.deepEqual(w1?.data, { pool: 'cpu' })
    assert.deepEqual(w1?.labels, { zone: 'a' })
    assert.equal(w1?.owner, null)
    assert.deepEqual(
      (await again.list('cfg')).items.map((r) => r.data),
      [1, 2],
    )
    assert.equal((await again.kv('settings').get('mode'))?.value, 'fast')
    // The declared index came back with the kind.
    const plan = await again.explain('substrate.worker', { fields: 'pool=gpu' })
    assert.equal(plan.index, 'field:pool')
    // The revision continues, gap-free.
    const next = await again.process('p').assert('cfg', 'c', 3, { owner: null })
    assert.equal(next.revision, revision + 1)
    await again.close()
  })

  it('retracts at startup what processes of the previous run owned (their exit never came)', async () => {
    const path = file()
    const backend = sqliteBackend({ path })
    const ds = createDataspace({ backend })
    const p = ds.process('short-lived')
    await p.assert('route', 'owned', { by: 'p' })
    await p.assert('route', 'free', { by: 'nobody' }, { owner: null })
    // A crash: the first dataspace is abandoned (never closed, so its process never exits) and
    // the file is opened again, as a restarted server would. Its file is closed under it, as
    // a dying process's would be, which releases the file's lock (one server per file).
    await ds.durable(ds.revision)
    await backend.close()
    const again = await openDataspace({ backend: sqliteBackend({ path }) })
    assert.equal(await again.get('route', 'owned'), undefined)
    assert.ok(await again.get('route', 'free'))
    await again.close()
  })

  it('keeps a persisted session alive across a reopen, and never hands out its pid again', async () => {
    const path = file()
    const ds = createDataspace({ backend: sqliteBackend({ path }) })
    const session = ds.process('client')
    await session.assert('route', 'kept', { by: 'session' })
    new SessionStore(ds).persist({
      id: 'session-1',
      resumeTokenHash: '00',
      pid: session.id,
      name: 'client',
      ttl: 10_000,
      children: [],
      lastChild: 0,
      principal: null,
    })
    await ds.close()
    const again = createDataspace({ backend: sqliteBackend({ path }) })
    assert.deepEqual(
      new SessionStore(again).restoredSessions.map((s) => s.pid),
      [session.id],
    )
    assert.equal((await again.get('route', 'kept'))?.owner, session.id, 'the session still owns it')
    assert.equal(again.processById(session.id)?.alive, true)
    const fresh = again.process('client')
    assert.notEqual(fresh.id, session.id)
    await again.close()
  })

  it("keeps a stored session's child processes, and stops keeping a session once it is dropped", async () => {
    const path = file()
    const ds = createDataspace({ backend: sqliteBackend({ path }) })
    const sessions = new SessionStore(ds)
    const kept = ds.process('client')
    const child = ds.processWithId(`${kept.id}.1`, 'worker')
    const dropped = ds.process('gone')
    await child.assert('route', 'by-child', { by: 'child' })
    await dropped.assert('route', 'by-dropped', { by: 'dropped' })
    const stored = (id: string, pid: string, children: { pid: string; name: string }[]) => ({
      id,
      resumeTokenHash: '00',
      pid,
      name: 'client',
      ttl: 10_000,
      children,
      lastChild: children.length,
      principal: null,
    })
    sessions.persist(stored('kept', kept.id, [{ pid: child.id, name: 'worker' }]))
    sessions.persist(stored('dropped', dropped.id, []))
    sessions.drop('dropped')
    await ds.close()
    assert.equal(dropped.alive, false, "a dropped session's process exits with the dataspace")
    assert.equal(child.alive, true, "a stored session's child is kept, not exited")
    const again = createDataspace({ backend: sqliteBackend({ path }) })
    assert.deepEqual(
      new SessionStore(again).restoredSessions.map((s) => s.id),
      ['kept'],
    )
    assert.equal(again.processById(child.id)?.name, 'worker')
    assert.equal((await again.get('route', 'by-child'))?.owner, child.id)
    assert.equal(await again.get('route', 'by-dropped'), undefined)
    await again.close()
  })

  it('acknowledges a write only once its batch is durable, and writes one batch per turn', async () => {
    const backend = spied(file())
    const ds = createDataspace({ backend })
    let release!: () => void
    backend.hold = new Promise((resolve) => {
      release = resolve
    })
    const p = ds.process('p')
    let acknowledged = 0
    const writes = Array.from({ length: 50 }, (_, i) =>
      p.assert('k', `r${i}`, i, { owner: null }).then(() => acknowledged++),
    )
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(acknowledged, 0, 'nothing is acknowledged before the batch is written')
    release()
    await Promise.all(writes)
    assert.equal(acknowledged, 50)
    // Group commit: the 50 asserts of one turn went out as one batch.
    const withCommits = backend.batches.filter((b) => b.commits.length > 0)
    assert.equal(withCommits.length, 1)
    assert.equal(withCommits[0]?.commits.length, 50)
    await ds.close()
  })

  it('retries a failed batch and loses nothing', async () => {
    const inner = sqliteBackend({ path: file() })
    let failures = 2
    const flaky = {
      ...inner,
      async write(batch: WriteBatch) {
        if (failures-- > 0) throw new Error('disk is busy')
        await inner.write(batch)
      },
    }
    const warn = console.warn
    console.warn = () => {} // the runtime's retry warnings are expected here
    try {
      const ds = createDataspace({ backend: flaky })
      const record = await ds.process('p').assert('k', 'x', 1, { owner: null })
      assert.equal(record.revision, 1)
      await ds.close()
    } finally {
      console.warn = warn
    }
  })
})
