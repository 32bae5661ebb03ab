// Node membership on PostgreSQL, with real `dataspace serve` processes on a fresh schema: a node
// registers at start and `dataspace nodes`, /readyz and dataspace_cluster_nodes show it; its
// heartbeat advances on the database clock; a stale row shows as not live, a long-dead one is
// pruned; SIGTERM removes the node's row. The schema lock still refuses a second server.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import type { NodeView } from '../../src/server/index.js'
import { until } from '../client/helpers.js'
import { seriesValue } from '../server/helpers.js'
import { runCli, startServe } from './helpers.js'
import type { ServeProcess } from './helpers.js'

const schema = `ds_nodes_${process.pid}`
const HEARTBEAT_MS = 200

async function nodes(url: string): Promise<NodeView[]> {
  const result = await runCli(url, ['nodes', '-o', 'json'])
  assert.equal(result.code, 0, result.stderr)
  return (JSON.parse(result.stdout) as { nodes: NodeView[] }).nodes
}

async function liveGauge(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return seriesValue(text, 'dataspace_cluster_nodes') ?? NaN
}

describe('dataspace nodes over PostgreSQL', { skip: postgresSkip }, () => {
  let db: pg.Client
  let serve: ServeProcess
  before(async () => {
    db = new pg.Client({ connectionString: POSTGRES_URL })
    await db.connect()
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('schema', schema)
    serve = await startServe([
      '--backend',
      url.toString(),
      '--log-level',
      'warn',
      '--limits',
      `nodeHeartbeatMs=${HEARTBEAT_MS}`,
    ])
  })
  after(async () => {
    await serve?.stop('SIGKILL')
    await db?.end()
    if (postgresSkip === false) await dropSchema(schema)
  })

  it('registers the node at start: dataspace nodes, /readyz and the gauge show it', async () => {
    const members = await nodes(serve.url)
    assert.equal(members.length, 1, JSON.stringify(members))
    const [self] = members
    assert.equal(self!.address, serve.url)
    assert.equal(self!.pid, serve.child.pid)
    assert.equal(self!.heartbeatMs, HEARTBEAT_MS)
    assert.equal(self!.live, true)
    assert.equal(self!.self, true)

    const ready = (await (await fetch(`${serve.url}/readyz`)).json()) as {
      ready: boolean
      node: string
      cluster: { live: number; members: NodeView[] }
    }
    assert.equal(ready.ready, true)
    assert.equal(ready.node, self!.id)
    assert.equal(ready.cluster.live, 1)
    assert.deepEqual(
      ready.cluster.members.map((m) => m.id),
      [self!.id],
    )
    assert.equal(await liveGauge(serve.url), 1)

    const table = await runCli(serve.url, ['nodes'])
    assert.equal(table.code, 0, table.stderr)
    const [header, row] = table.stdout.trimEnd().split('\n')
    assert.match(header!, /^ID\s+ADDRESS\s+HOST\s+PID\s+STARTED\s+HEARTBEAT\s+LIVE$/)
    assert.ok(row!.startsWith(`${self!.id} *`), row)
    assert.ok(row!.includes(serve.url), row)
    assert.match(row!, /\byes$/)
  })

  it('advances the heartbeat on the database clock', async () => {
    const read = async (): Promise<{ beat: Date; now: Date; started: Date }> => {
      const { rows } = await db.query<{ beat: Date; now: Date; started: Date }>(
        `SELECT heartbeat_at AS beat, started_at AS started, now() AS now FROM "${schema}".nodes`,
      )
      assert.equal(rows.length, 1)
      return rows[0]!
    }
    const first = await read()
    assert.ok(first.beat <= first.now)
    await until(async () => (await read()).beat > first.beat, 15_000, 'a newer heartbeat')
    const later = await read()
    assert.ok(later.beat <= later.now && later.beat >= later.started)
    assert.equal(later.started.getTime(), first.started.getTime())
  })

  it('shows a stale row as not live, and prunes a long-dead one', async () => {
    // Stale: beat 40 s ago with a 10 s interval (live for 30 s, pruned after 100 s).
    // Dead: beat an hour ago (pruned at the next heartbeat of any node).
    await db.query(
      `INSERT INTO "${schema}".nodes (id, address, host, pid, heartbeat_ms, started_at, heartbeat_at)
       VALUES ('stale-node', 'http://10.0.0.2:7411', 'other', 1, 10000,
               now() - interval '2 minutes', now() - interval '40 seconds'),
              ('dead-node', 'http://10.0.0.3:7411', 'other', 2, 2000,
               now() - interval '2 hours', now() - interval '1 hour')`,
    )
    await until(
      async () => {
        const { rows } = await db.query(`SELECT 1 FROM "${schema}".nodes WHERE id = 'dead-node'`)
        return rows.length === 0
      },
      15_000,
      'dead-node pruned',
    )
    const members = await nodes(serve.url)
    const stale = members.find((m) => m.id === 'stale-node')
    assert.ok(stale !== undefined, JSON.stringify(members))
    assert.equal(stale.live, false)
    assert.equal(stale.self, false)
    assert.equal(members.find((m) => m.self)?.live, true)
    assert.equal(await liveGauge(serve.url), 1)
    const table = await runCli(serve.url, ['nodes'])
    assert.match(table.stdout, /^stale-node\s.*\bno$/m)
  })

  it('re-registers a node whose row was pruned while it was cut off', async () => {
    const self = (await nodes(serve.url)).find((m) => m.self)!
    await db.query(`DELETE FROM "${schema}".nodes WHERE id = $1`, [self.id])
    await until(
      async () => (await nodes(serve.url)).some((m) => m.id === self.id && m.live),
      15_000,
      'the node registered again',
    )
  })

  it('removes its row on a graceful shutdown', async () => {
    const self = (await nodes(serve.url)).find((m) => m.self)!
    assert.equal(await serve.stop('SIGTERM'), 0)
    const { rows } = await db.query<{ id: string }>(`SELECT id FROM "${schema}".nodes`)
    assert.deepEqual(
      rows.map((r) => r.id),
      ['stale-node'],
    )
    assert.ok(!rows.some((r) => r.id === self.id))
  })
})
