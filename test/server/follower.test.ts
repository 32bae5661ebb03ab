// A follower server (docs/server.md, "Followers"): a server over a PostgreSQL schema that another
// server writes. Its clients read and watch what the writer's clients write; every write they
// try is refused 503 `Unavailable` naming the follower; /readyz says it follows, and is 503
// with the reason when it cannot read the writer's feed.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { connect } from '../../src/client/index.js'
import { openDataspace, Unavailable } from '../../src/index.js'
import type { Dataspace, WatchEvent } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'
import { Collector, TcpProxy, until } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'
import { seriesValue } from './helpers.js'

const schema = `ds_srv_follow_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

interface Node {
  readonly ds: Dataspace
  readonly server: DataspaceServer
  close(): Promise<void>
}

/** A server over the test schema: its writer, or (`follow`) a follower of it. */
async function node(follow: boolean, url = POSTGRES_URL): Promise<Node> {
  const ds = await openDataspace({
    backend: postgresBackend({ url, schema, follow, onError: () => {} }),
    log: { warn: () => {} },
  })
  const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
  return {
    ds,
    server,
    async close() {
      await server.close()
      await ds.close()
    },
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('a follower server', { skip: postgresSkip }, () => {
  it('serves reads and watches of what the writer’s clients write', async () => {
    const writer = await node(false)
    const follower = await node(true)
    const a = await connect(writer.server.url, { name: 'a' })
    const b = await connect(follower.server.url, { name: 'b' })
    try {
      await a.process('w').assert('task', 'before', { n: 0 })
      const watch = new Collector<WatchEvent>(b.watch('task'))
      await watch.until((events) => events.some((e) => e.type === 'snapshot'), 10_000, 'snapshot')
      await a.process('w').assert('task', 't1', { n: 1 })
      await watch.until(
        (events) => events.some((e) => e.type === 'asserted' && e.record.id === 't1'),
        10_000,
        'the writer’s assert on the follower',
      )
      const asserted = watch.items.find((e) => e.type === 'asserted' && e.record.id === 't1')
      assert.deepEqual(asserted?.type === 'asserted' && asserted.record.data, { n: 1 })
      watch.close()

      const listed = async (server: DataspaceServer): Promise<unknown> =>
        (await getJson(`${server.url}/v1/records/task`)).body.items
      await until(() => follower.ds.revision === writer.ds.revision, 10_000, 'caught up')
      assert.deepEqual(await listed(follower.server), await listed(writer.server))
      assert.equal((await b.get('task', 't1'))?.id, 't1')
      assert.deepEqual(
        (await b.list('task')).items.map((r) => r.id),
        ['before', 't1'],
      )
    } finally {
      await Promise.all([a.close(), b.close()])
      await follower.close()
      await writer.close()
    }
  })

  it('refuses writes over HTTP and WebSocket with 503 Unavailable naming the follower', async () => {
    const writer = await node(false)
    const follower = await node(true)
    const b = await connect(follower.server.url, { name: 'b' })
    try {
      // Sessions work on a follower (in memory): the write is refused by the engine.
      const opened = await fetch(`${follower.server.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'http' }),
      })
      const { session } = (await opened.json()) as { session: string }
      const res = await fetch(`${follower.server.url}/v1/records/task/x`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'dataspace-session': session },
        body: JSON.stringify({ data: { n: 1 } }),
      })
      const body = (await res.json()) as { error: { code: string; message: string } }
      assert.equal(res.status, 503, JSON.stringify(body))
      assert.equal(body.error.code, 'Unavailable')
      assert.match(body.error.message, /follow/)

      await assert.rejects(b.process('p').assert('task', 'y', { n: 2 }), (error: unknown) => {
        assert.ok(error instanceof Unavailable, String(error))
        assert.match(error.message, /follow/)
        return true
      })
      assert.equal(await writer.ds.get('task', 'x'), undefined)
      assert.equal(await writer.ds.get('task', 'y'), undefined)
    } finally {
      await b.close()
      await follower.close()
      await writer.close()
    }
  })

  it('keeps sessions in memory only: none reach the writer’s schema', async () => {
    const writer = await node(false)
    const follower = await node(true)
    try {
      const res = await fetch(`${follower.server.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'reader' }),
      })
      assert.equal(res.status, 201)
      const { session } = (await res.json()) as { session: string }
      assert.equal(follower.server.stats.sessions, 1)
      // Given the writer's group commit time to run, the schema still holds no session.
      await new Promise((resolve) => setTimeout(resolve, 100))
      const stored = await sql<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".sessions`)
      assert.equal(stored[0]?.n, '0')
      const heartbeat = await fetch(`${follower.server.url}/v1/sessions/${session}/heartbeat`, {
        method: 'POST',
        headers: { 'dataspace-session': session },
      })
      assert.equal(heartbeat.status, 200)
      const end = await fetch(`${follower.server.url}/v1/sessions/${session}`, {
        method: 'DELETE',
        headers: { 'dataspace-session': session },
      })
      assert.equal(end.status, 204)
    } finally {
      await follower.close()
      await writer.close()
    }
  })

  it('/readyz says it follows, and is 503 with the reason when the feed fails', async () => {
    const writer = await node(false)
    const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
    const proxied = new URL(POSTGRES_URL)
    proxied.host = new URL(proxy.url).host
    const follower = await node(true, proxied.toString())
    try {
      const mine = await getJson(`${writer.server.url}/readyz`)
      assert.equal(mine.status, 200)
      assert.equal(mine.body.role, 'writer')
      const ready = await getJson(`${follower.server.url}/readyz`)
      assert.equal(ready.status, 200, JSON.stringify(ready.body))
      assert.equal(ready.body.role, 'follower')
      assert.equal(typeof ready.body.node, 'string')

      proxy.down()
      const reasons = async (): Promise<string> => {
        const probe = await getJson(`${follower.server.url}/readyz`)
        return probe.status === 503 ? ((probe.body.reasons as string[]) ?? []).join('\n') : ''
      }
      // The follower's next poll (250 ms) fails: the reason names the feed it cannot read.
      await until(async () => /feed/.test(await reasons()), 10_000, 'the feed reason')
      const down = await getJson(`${follower.server.url}/readyz`)
      assert.equal(down.body.role, 'follower')
      assert.match(await reasons(), /backend postgres: this follower cannot read the writer’s feed/)
      // The gauge alerts watch counts a follower's failing feed as a failing backend.
      const failing = async (): Promise<number | undefined> =>
        seriesValue(
          await (await fetch(`${follower.server.url}/metrics`)).text(),
          'dataspace_backend_write_failing_seconds',
        )
      assert.ok(((await failing()) ?? 0) > 0)

      proxy.up()
      await until(
        async () => (await getJson(`${follower.server.url}/readyz`)).status === 200,
        20_000,
        'ready again',
      )
      assert.equal(await failing(), 0)
    } finally {
      proxy.up()
      await follower.close()
      await writer.close()
      await proxy.close()
    }
  })
})
