// /readyz while PostgreSQL is out of reach (a TCP proxy in front of it, so the shared service is
// left alone): not ready, with the reason, whether the server is idle (the probe itself finds
// the database gone) or writing (the backend runtime's failing batch); ready again once the
// database is back. docs/server.md, "Probes"; docs/cluster.md.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace, Unavailable } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import { TcpProxy } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { AUTH } from './auth-fixtures.js'
import { until } from './helpers.js'

interface Readiness {
  readonly status: number
  readonly body: { ready: boolean; reasons?: string[] }
}

const schema = `ds_readyz_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

describe('/readyz and an unreachable backend', { skip: postgresSkip }, () => {
  it('is 503 with the reason while PostgreSQL is gone, idle or writing, and 200 once it is back', async () => {
    const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
    const proxied = new URL(POSTGRES_URL)
    proxied.host = new URL(proxy.url).host
    const warn = console.warn
    console.warn = () => {} // the runtime's retry warnings are the expected noise here
    try {
      const ds = await openDataspace({
        backend: postgresBackend({ url: proxied.toString(), schema, onError: () => {} }),
        durableTimeoutMs: 300,
      })
      const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
      const readiness = async (): Promise<Readiness> => {
        const res = await fetch(`${server.url}/readyz`)
        return { status: res.status, body: (await res.json()) as Readiness['body'] }
      }
      try {
        assert.deepEqual((await readiness()).status, 200)

        // Idle: nothing is being written, so only the probe can find the database gone.
        proxy.down()
        const idle = await readiness()
        assert.equal(idle.status, 503, JSON.stringify(idle.body))
        assert.equal(idle.body.ready, false)
        assert.match(idle.body.reasons?.join('\n') ?? '', /database|members/i)

        // Writing: the runtime's failing batch is a reason of its own, naming the backend.
        const writer = ds.process('writer')
        const write = writer.assert('job', '1', { n: 1 }, { owner: null }).then(
          () => 'acknowledged',
          (error: unknown) => (error instanceof Unavailable ? 'unavailable' : String(error)),
        )
        await until(
          async () => /backend postgres/.test((await readiness()).body.reasons?.join('\n') ?? ''),
          10_000,
          'the backend reason',
        )
        const failing = async (): Promise<number> => {
          const text = await (await fetch(`${server.url}/metrics`)).text()
          const line = text
            .split('\n')
            .find((l) => l.startsWith('dataspace_backend_write_failing_seconds '))
          return Number(line?.split(' ')[1])
        }
        assert.ok((await failing()) > 0, 'the metric counts the outage')

        proxy.up()
        await until(async () => (await readiness()).status === 200, 20_000, 'ready again')
        assert.equal((await readiness()).body.reasons, undefined)
        assert.equal(await failing(), 0)
        assert.match(await write, /acknowledged|unavailable/)
        // What was written while it was gone lands once it is back.
        await until(async () => (await ds.get('job', '1')) !== undefined, 10_000, 'the write')
      } finally {
        await server.close()
        await ds.close()
      }
    } finally {
      console.warn = warn
      await proxy.close()
    }
  })

  it('with auth on, gives the causes but not the errors: a probe takes no token', async () => {
    const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
    const proxied = new URL(POSTGRES_URL)
    proxied.host = new URL(proxy.url).host
    const ds = await openDataspace({
      backend: postgresBackend({ url: proxied.toString(), schema, onError: () => {} }),
    })
    const server = await createServer({
      ds,
      port: 0,
      auth: AUTH,
      logger: pino({ level: 'silent' }),
    })
    try {
      proxy.down()
      const res = await fetch(`${server.url}/readyz`)
      const text = await res.text()
      assert.equal(res.status, 503, text)
      assert.match(text, /cluster members unreadable/)
      // Neither the database's address nor the driver's error reaches an unauthenticated caller.
      assert.doesNotMatch(text, /127\.0\.0\.1|ECONNREFUSED|terminated|timeout/i)
    } finally {
      proxy.up()
      await server.close()
      await ds.close()
      await proxy.close()
    }
  })
})
