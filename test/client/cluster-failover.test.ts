// Client failover across cluster nodes (docs/cluster.md, "Resuming on another node", "Client
// failover"): two cluster nodes' servers on one PostgreSQL schema. A client's session moves to
// the other node when its node goes away: same pid, nothing retracted, its stored answers answer
// a re-sent call instead of applying it twice, and the node it left drops it without retracting
// anything. A wrong resume token takes nothing over.
import assert from 'node:assert/strict'
import { after, afterEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { connect } from '../../src/client/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'
import { RawWs } from '../server/ws-helpers.js'
import { until } from './helpers.js'

const schema = `ds_failover_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

interface Node {
  readonly ds: Dataspace
  readonly server: DataspaceServer
}

let nodes: Node[] = []

async function startNode(limits: { maxSessions?: number } = {}): Promise<Node> {
  const ds = await openDataspace({
    backend: postgresBackend({ url: POSTGRES_URL, schema, cluster: true, onError: () => {} }),
    followPollMs: 50,
    log: { warn: () => {} },
  })
  const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }), limits })
  const node = { ds, server }
  nodes.push(node)
  return node
}

async function sessionRow(id: string): Promise<{ node: string } | undefined> {
  const rows = await sql<{ node: string }>(`SELECT node FROM "${schema}".sessions WHERE id = $1`, [
    id,
  ])
  return rows[0]
}

describe('client failover across cluster nodes', { skip: postgresSkip }, () => {
  afterEach(async () => {
    for (const node of nodes) {
      await node.server.close().catch(() => {})
      await node.ds.close().catch(() => {})
    }
    nodes = []
  })

  it('connect([a, b]) resumes the session on b when a goes away: same pid, nothing lost', async () => {
    const a = await startNode()
    const b = await startNode()
    const client = await connect([a.server.url, b.server.url], {
      name: 'mover',
      ttl: 10_000,
      backoff: { initialMs: 20, maxMs: 200 },
    })
    try {
      const pid = client.session.id
      // A watch from before the move: it resumes on B from its revision (one store, one
      // history: the nodes share the welcome's epoch), with no reset.
      const watch = client.watch('task')
      const seen: string[] = []
      const watching = (async () => {
        for await (const event of watch) {
          seen.push(event.type === 'asserted' ? `asserted ${event.record.id}` : event.type)
          if (event.type === 'asserted' && event.record.id === 'after') return
        }
      })()
      await client.session.assert('task', 'mine', { n: 1 })
      await until(() => seen.includes('asserted mine'), 5_000, 'the watch sees mine')
      const row = await sessionRow(
        (await sql<{ id: string }>(`SELECT id FROM "${schema}".sessions WHERE pid = $1`, [pid]))[0]!
          .id,
      )
      assert.equal(row?.node, a.ds.node)
      // Node A's server goes away (its dataspace stays: it finds the session gone later).
      const left = Date.now()
      await a.server.close()
      const written = await client.session.assert('task', 'after', { n: 2 })
      const failoverMs = Date.now() - left
      assert.ok(written.revision > 0)
      assert.equal(client.session.id, pid, 'the same pid')
      const mine = await b.ds.get('task', 'mine')
      assert.equal(mine?.owner, pid, 'what it owned was not retracted')
      assert.equal((await b.ds.get('task', 'after'))?.owner, pid)
      await watching
      assert.deepEqual(seen, ['snapshot', 'asserted mine', 'asserted after'])
      const id = (
        await sql<{ id: string }>(`SELECT id FROM "${schema}".sessions WHERE pid = $1`, [pid])
      )[0]!.id
      assert.equal((await sessionRow(id))?.node, b.ds.node, 'the session is node B’s now')
      // Node A finds it gone at its next renewal and drops it without retracting anything.
      await until(() => a.ds.processById(pid) === undefined, 5_000, 'node A drops the session')
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal((await b.ds.get('task', 'mine'))?.owner, pid)
      console.log(`failover: ${failoverMs} ms from node A's close to an answer from node B`)
    } finally {
      await client.close()
    }
  })

  it('a re-sent call is answered from the stored answer on the other node, applied once', async () => {
    const a = await startNode()
    const b = await startNode()
    const first = new RawWs(a.server.url)
    const welcome = await first.hello({ ttl: 30_000 })
    const session = welcome.session!
    const call = {
      pid: session.pid,
      kind: 'job',
      id: 'once',
      data: { n: 1 },
      options: { ifRevision: 0 },
    }
    const answer = await first.call(7, 'assert', call)
    assert.equal(answer.type, 'result', JSON.stringify(answer))
    first.close()
    await a.server.close()
    const again = new RawWs(b.server.url)
    const resumed = await again.hello({
      resume: { session: session.id, resumeToken: session.resumeToken },
    })
    assert.equal(resumed.resumed, true, JSON.stringify(resumed))
    assert.equal(resumed.session?.pid, session.pid)
    const before = b.ds.revision
    const repeated = await again.call(7, 'assert', call)
    assert.equal(repeated.type, 'result', JSON.stringify(repeated))
    assert.deepEqual(repeated.value, answer.value, 'answered as before')
    assert.equal(b.ds.revision, before, 'not applied again')
    again.close()
  })

  it('a session taken over counts against the node’s session cap', async () => {
    const a = await startNode()
    const b = await startNode({ maxSessions: 1 })
    const owner = new RawWs(a.server.url)
    const session = (await owner.hello({ ttl: 30_000 })).session!
    owner.close()
    const full = new RawWs(b.server.url)
    await full.hello({ ttl: 30_000 })
    const mover = new RawWs(b.server.url)
    const answer = await mover.hello({
      resume: { session: session.id, resumeToken: session.resumeToken },
    })
    assert.equal(answer.type, 'error', JSON.stringify(answer))
    assert.equal(answer.error?.code, 'TooLarge')
    assert.equal((await sessionRow(session.id))?.node, a.ds.node, 'not taken over')
    full.close()
  })

  it('a node at its session cap still resumes a session it serves', async () => {
    const b = await startNode({ maxSessions: 1 })
    const first = new RawWs(b.server.url)
    const session = (await first.hello({ ttl: 30_000 })).session!
    first.close()
    await first.closed
    const again = new RawWs(b.server.url)
    const resumed = await again.hello({
      resume: { session: session.id, resumeToken: session.resumeToken },
    })
    assert.equal(resumed.resumed, true, JSON.stringify(resumed))
    assert.equal(resumed.session?.pid, session.pid)
    again.close()
  })

  it('a wrong resume token takes nothing over: a new session', async () => {
    const a = await startNode()
    const b = await startNode()
    const owner = new RawWs(a.server.url)
    const welcome = await owner.hello({ ttl: 30_000 })
    const session = welcome.session!
    const thief = new RawWs(b.server.url)
    const answer = await thief.hello({ resume: { session: session.id, resumeToken: 'wrong' } })
    assert.equal(answer.resumed, false)
    assert.notEqual(answer.session?.pid, session.pid)
    assert.equal((await sessionRow(session.id))?.node, a.ds.node, 'still node A’s')
    thief.close()
    owner.close()
  })
})
