// Sessions in the store on real PostgreSQL (docs/cluster.md, "Sessions in the store"): a cluster
// node's sessions are rows naming the node, with `expires_at` as the lease on the database
// clock. The node renews them in one statement; once a lease runs out any node reaps the
// session (one owner-exit commit that deletes its row, claimed so that two nodes do not reap
// it twice), a renewal never brings it back, and write_batch refuses a commit of a session the
// node no longer holds (`ProcessExited`). (The engine's side against an in-memory store:
// test/engine/session-leases.test.ts.)
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import type { StoredSession } from '../../src/backends/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'
import { storeSession } from '../engine/shared-store.js'

const schema = `ds_leases_${process.pid}`
let opened: Dataspace[] = []

async function node(): Promise<Dataspace> {
  const ds = await openDataspace({
    backend: postgresBackend({ url: POSTGRES_URL, schema, cluster: true }),
    followPollMs: 50,
  })
  opened.push(ds)
  return ds
}

interface Row {
  node: string | null
  left: number
}

/** The session's row: its node, and the ms left on its lease (database clock). */
async function row(id: string): Promise<Row | undefined> {
  const rows = await sql<Row>(
    `SELECT node, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS left
     FROM "${schema}".sessions WHERE id = $1`,
    [id],
  )
  return rows[0]
}

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Runs the session's lease out now, as if its node had stopped renewing it. */
async function expire(id: string): Promise<void> {
  await sql(`UPDATE "${schema}".sessions SET expires_at = now() WHERE id = $1`, [id])
}

describe('sessions in the store on PostgreSQL (cluster nodes)', { skip: postgresSkip }, () => {
  before(() => dropSchema(schema))
  after(async () => {
    await Promise.all(opened.map((ds) => ds.close()))
    opened = []
    await dropSchema(schema)
  })

  it('stores a session with its node, and renews its lease on the database clock', async () => {
    const a = await node()
    const proc = a.process('agent')
    const session = storeSession(a, proc, 600)
    await proc.assert('task', 'renewed', {})
    await until('the row', async () => (await row(session.id)) !== undefined)
    assert.equal((await row(session.id))?.node, a.node)
    // Three leases long: only renewals (every 200 ms here) keep it.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const kept = await row(session.id)
    assert.ok(kept !== undefined && kept.left > 0, JSON.stringify(kept))
    assert.ok(proc.alive)
    await proc.exit()
    a.storage?.deleteSession(session.id)
    await until('the row goes', async () => (await row(session.id)) === undefined)
  })

  it('another node reaps a session whose lease ran out, in one owner-exit commit', async () => {
    const [a, b] = [opened[0] ?? (await node()), await node()]
    const proc = a.process('agent')
    const session = storeSession(a, proc, 60_000)
    await proc.assert('task', 'r1', {})
    const last = await proc.assert('task', 'r2', {})
    await until('the row', async () => (await row(session.id)) !== undefined)
    await expire(session.id)
    await until('the row is reaped', async () => (await row(session.id)) === undefined)
    const changes = await sql<{ revision: string; id: string; reason: string }>(
      `SELECT revision, id, reason FROM "${schema}".changes
       WHERE revision > $1 AND kind = 'task' ORDER BY revision, seq`,
      [last.revision],
    )
    assert.deepEqual(
      changes.map((c) => [c.id, c.reason]),
      [
        ['r1', 'owner-exit'],
        ['r2', 'owner-exit'],
      ],
    )
    assert.equal(changes[0]?.revision, changes[1]?.revision, 'one commit')
    await until('node B has applied it', () => b.revision >= Number(changes[0]?.revision))
    assert.equal(await b.get('task', 'r1'), undefined)
    // Node A finds it lost at its next renewal: the process ends, with no commit of its own.
    await until('node A ends the lost session', () => !proc.alive)
    assert.equal(await proc.exited, 'lease-expired')
  })

  it('never renews a lease that ran out, and refuses that session’s writes', async () => {
    const a = opened[0] ?? (await node())
    const proc = a.process('late')
    const session = storeSession(a, proc, 60_000)
    await proc.assert('task', 'before', {})
    await until('the row', async () => (await row(session.id)) !== undefined)
    // Expired, and claimed by a reaper that never comes (so that nobody reaps it meanwhile).
    await sql(
      `UPDATE "${schema}".sessions SET expires_at = now(), reap_at = now() + interval '1 hour'
       WHERE id = $1`,
      [session.id],
    )
    await assert.rejects(proc.assert('task', 'after', {}), { code: 'ProcessExited' })
    const stored = await sql(
      `SELECT 1 FROM "${schema}".records WHERE kind = 'task' AND id = 'after'`,
    )
    assert.equal(stored.length, 0, 'nothing of it was stored')
    await until('undone on the node', async () => (await a.get('task', 'after')) === undefined)
    await until('node A ends the lost session', () => !proc.alive)
    const left = await row(session.id)
    assert.ok(left !== undefined && left.left <= 0, `not renewed: ${JSON.stringify(left)}`)
  })

  it('a write and its session’s end in one batch: the write is stored, the row goes', async () => {
    // write_batch itself, through a cluster backend: the session is stored by one batch, then
    // a batch holds a commit fenced on it and its delete (a client that wrote, then ended its
    // session, both staged in one turn). The delete must not make the fence refuse the write.
    const backend = postgresBackend({ url: POSTGRES_URL, schema, cluster: true })
    const state = await backend.open()
    try {
      const session: StoredSession = {
        id: 'batch-end',
        resumeTokenHash: '00',
        pid: 'direct/1',
        name: 'direct',
        ttl: 60_000,
        children: [],
        lastChild: 0,
        principal: null,
      }
      await backend.write({
        id: 'direct-run-1',
        node: 'direct',
        commits: [],
        kinds: [],
        sessions: { put: [{ ...session, fresh: true }], delete: [] },
      })
      assert.equal((await row('batch-end'))?.node, 'direct')
      const head = await sql<{ revision: string }>(`SELECT revision FROM "${schema}".revision`)
      const revision = Number(head[0]!.revision) + 1
      await backend.write({
        id: 'direct-run-2',
        node: 'direct',
        commits: [
          {
            revision,
            session: 'batch-end',
            changes: [
              {
                kind: 'task',
                id: 'last-words',
                after: {
                  kind: 'task',
                  id: 'last-words',
                  data: {},
                  labels: {},
                  owner: null,
                  revision,
                  createdRevision: revision,
                },
              },
            ],
          },
        ],
        kinds: [],
        sessions: { put: [], delete: ['batch-end'] },
      })
      assert.equal(await row('batch-end'), undefined)
      const stored = await sql(
        `SELECT 1 FROM "${schema}".records WHERE kind = 'task' AND id = 'last-words'`,
      )
      assert.equal(stored.length, 1)
      assert.ok(state.revision < revision)
    } finally {
      await backend.close()
    }
  })

  it('another node reaps what a session holds in a non-resident kind', async () => {
    const [a, b] = [await node(), await node()]
    await a.defineKind('big', { resident: false })
    const proc = a.process('bulk')
    const session = storeSession(a, proc, 60_000)
    // Written after B opened: B's own counts of non-resident owners never saw it.
    await proc.assert('big', 'b1', { n: 1 })
    await until('the row', async () => (await row(session.id)) !== undefined)
    // A stops (its leases with it; the session stays in the store), so only B can reap it.
    await a.close()
    opened = opened.filter((ds) => ds !== a)
    await expire(session.id)
    await until('the row is reaped', async () => (await row(session.id)) === undefined)
    const left = await sql(`SELECT 1 FROM "${schema}".records WHERE kind = 'big' AND id = 'b1'`)
    assert.equal(left.length, 0, 'the non-resident record went with its owner')
    assert.equal(await b.get('big', 'b1'), undefined)
  })

  it('a node of the previous version (11 arguments) still writes after migration 10', async () => {
    await node()
    const head = await sql<{ revision: string }>(`SELECT revision FROM "${schema}".revision`)
    const revision = Number(head[0]!.revision) + 1
    const record = { kind: 'task', id: 'old-node', data: {}, labels: {}, owner: null }
    const rows = await sql<{ stored: boolean }>(
      `SELECT "${schema}".write_batch($1, $2, $2, NULL, $3::jsonb, $4::jsonb, NULL, NULL, NULL,
         NULL, NULL) AS stored`,
      [
        'old-run-1',
        revision,
        JSON.stringify([{ ...record, revision, created_revision: revision, expires_at: null }]),
        JSON.stringify([{ revision, seq: 0, kind: 'task', id: 'old-node', after: record }]),
      ],
    )
    assert.equal(rows[0]?.stored, true)
  })

  it('one reaper per session when several nodes reap at once', async () => {
    while (opened.length < 3) await node()
    const a = opened[0]!
    const sessions = Array.from({ length: 20 }, (_, i) => {
      const proc = a.process(`many${i}`)
      return { proc, session: storeSession(a, proc, 60_000) }
    })
    await Promise.all(sessions.map(({ proc }, i) => proc.assert('many', `m${i}`, {})))
    await until('the rows', async () => (await row(sessions[19]!.session.id)) !== undefined)
    const before = await sql<{ revision: string }>(`SELECT revision FROM "${schema}".revision`)
    await sql(`UPDATE "${schema}".sessions SET expires_at = now() WHERE id LIKE 's-%many%'`)
    await until('every row is reaped', async () => {
      const left = await sql(`SELECT 1 FROM "${schema}".sessions WHERE id LIKE 's-%many%'`)
      return left.length === 0
    })
    // One owner-exit commit per session, and no second (empty) one: 20 commits, one record each.
    const commits = await sql<{ revision: string; n: string }>(
      `SELECT revision, count(*) AS n FROM "${schema}".changes
       WHERE revision > $1 AND kind = 'many' GROUP BY revision`,
      [before[0]!.revision],
    )
    assert.equal(commits.length, 20)
    const all = await sql<{ revision: string }>(`SELECT revision FROM "${schema}".revision`)
    assert.equal(Number(all[0]!.revision) - Number(before[0]!.revision), 20, 'no empty reaps')
  })
})
