// The PostgreSQL backend's `membership` (docs/cluster.md, "Membership") with several nodes
// registered through one backend, as N servers would: liveness and pruning are judged on the
// database clock, each row by its own interval, and no node prunes a live one.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import type { Backend, NodeRegistration } from '../../src/backends/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const schema = `ds_members_${randomBytes(6).toString('hex')}`

function node(id: string, heartbeatMs = 1000): NodeRegistration {
  return { id, address: `http://${id}:7411`, host: 'h', pid: 1, heartbeatMs }
}

describe('postgres membership', { skip: postgresSkip }, () => {
  let backend: Backend
  let db: pg.Client
  before(async () => {
    backend = postgresBackend({ url: POSTGRES_URL, schema })
    await backend.open()
    db = new pg.Client({ connectionString: POSTGRES_URL })
    await db.connect()
  })
  after(async () => {
    await backend?.close()
    await db?.end()
    if (postgresSkip === false) await dropSchema(schema)
  })

  it('lists every joined node, live, by start; leave removes one', async () => {
    const m = backend.membership!
    await m.join(node('a'))
    await m.join(node('b'))
    await m.join(node('a')) // again: one row, registered anew (a node that was pruned)
    let members = await m.members()
    assert.deepEqual(
      members.map((x) => [x.id, x.live]),
      [
        ['b', true],
        ['a', true],
      ],
    )
    assert.ok(members.every((x) => x.heartbeatAt >= x.startedAt))
    await m.leave('b')
    members = await m.members()
    assert.deepEqual(
      members.map((x) => x.id),
      ['a'],
    )
  })

  it('judges each row by its own interval and prunes only long-dead rows', async () => {
    const m = backend.membership!
    await db.query(
      `INSERT INTO "${schema}".nodes (id, address, host, pid, heartbeat_ms, heartbeat_at) VALUES
         ('slow', 'x', 'h', 1, 60000, now() - interval '100 seconds'),
         ('late', 'x', 'h', 1, 1000, now() - interval '5 seconds'),
         ('gone', 'x', 'h', 1, 1000, now() - interval '11 seconds')`,
    )
    await m.heartbeat(node('a'))
    const members = (await m.members()).map((x) => `${x.id}:${x.live}`).sort()
    // slow: 100 s < 3 × 60 s, live; late: 5 s > 3 × 1 s, not live, kept (< 10 × 1 s); gone: pruned.
    assert.deepEqual(members, ['a:true', 'late:false', 'slow:true'])
  })

  it("a node with a long interval does not break the others' heartbeat or the listing", async () => {
    const m = backend.membership!
    // 300 000 000 ms fits an int, but 10 × it does not: the product is taken as an interval.
    await m.join(node('patient', 300_000_000))
    await m.heartbeat(node('a'))
    assert.ok((await m.members()).some((x) => x.id === 'patient' && x.live))
    await m.leave('patient')
  })

  it('registers a node again when its row was pruned meanwhile', async () => {
    const m = backend.membership!
    await m.leave('a')
    await m.heartbeat(node('a'))
    assert.ok((await m.members()).some((x) => x.id === 'a' && x.live))
  })
})
