// Node membership on a backend one server owns (memory, SQLite): the server is the only node,
// and /readyz, GET /v1/nodes and dataspace_cluster_nodes say so. With auth, the probe gives the
// count only and GET /v1/nodes needs read on $nodes. PostgreSQL: test/cli/nodes-postgres.test.ts.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { openDataspace } from '../../src/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import { createServer } from '../../src/server/index.js'
import type { NodeView } from '../../src/server/index.js'
import { ADMIN, API_WRITER, AUTH, bearer, READER } from './auth-fixtures.js'
import { seriesValue, start } from './helpers.js'
import type { Harness } from './helpers.js'

type Member = NodeView

function checkSelf(members: readonly Member[], url: string, node: string): void {
  assert.equal(members.length, 1, JSON.stringify(members))
  const [self] = members
  assert.equal(self!.id, node)
  assert.equal(self!.address, url)
  assert.equal(self!.pid, process.pid)
  assert.equal(self!.live, true)
  assert.equal(self!.self, true)
  assert.ok(self!.heartbeatAt >= self!.startedAt)
}

describe('membership on a single-server backend', () => {
  it('memory: the server lists itself in /readyz, GET /v1/nodes and the gauge', async () => {
    const h = await start()
    try {
      const ready = (await h.call('GET', '/readyz')).body as unknown as {
        ready: boolean
        node: string
        cluster: { live: number; members: Member[] }
      }
      assert.equal(ready.ready, true)
      assert.match(ready.node, /^local-[0-9a-f]{8}$/)
      assert.equal(ready.cluster.live, 1)
      checkSelf(ready.cluster.members, h.url, ready.node)
      const nodes = await h.call('GET', '/v1/nodes')
      assert.equal(nodes.status, 200)
      checkSelf((nodes.body as unknown as { nodes: Member[] }).nodes, h.url, ready.node)
      const metrics = await (await fetch(`${h.url}/metrics`)).text()
      assert.equal(seriesValue(metrics, 'dataspace_cluster_nodes'), 1)
    } finally {
      await h.close()
    }
  })

  it('sqlite: the same, and no nodes table is needed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ds-nodes-'))
    const ds = await openDataspace({ backend: sqliteBackend({ path: join(dir, 'ds.db') }) })
    const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
    try {
      const res = await fetch(`${server.url}/v1/nodes`)
      const { nodes } = (await res.json()) as { nodes: Member[] }
      assert.equal(nodes.length, 1)
      assert.equal(nodes[0]!.address, server.url)
      assert.equal(nodes[0]!.self, true)
    } finally {
      await server.close()
      await ds.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('membership with auth', () => {
  let h: Harness
  before(async () => {
    h = await start({ auth: AUTH })
  })
  after(() => h.close())

  it('/readyz counts the live nodes but lists them to no one', async () => {
    const res = await h.call('GET', '/readyz')
    assert.equal(res.status, 200)
    assert.deepEqual((res.body as unknown as { cluster: unknown }).cluster, { live: 1 })
  })

  it('GET /v1/nodes needs read on $nodes', async () => {
    assert.equal((await h.call('GET', '/v1/nodes')).status, 401)
    for (const token of [READER, ADMIN]) {
      const res = await h.call('GET', '/v1/nodes', { headers: bearer(token) })
      assert.equal(res.status, 200, token)
    }
    const refused = await h.call('GET', '/v1/nodes', { headers: bearer(API_WRITER) })
    assert.equal(refused.status, 403)
    assert.match(refused.body.error.message, /no read right on kind "\$nodes"/)
  })
})
