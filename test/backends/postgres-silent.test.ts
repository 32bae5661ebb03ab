// A database that stops answering mid-session (a network that silently drops packets, here a
// TCP proxy that swallows every answer): a write or a follower's feed read must fail after
// `queryTimeoutMs`, be reported, and go through once the network is back — not hang until TCP
// gives up (about 15 minutes) while everything looks healthy.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { TcpProxy, until } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'

const schema = `ds_silent_${process.pid}`
const quiet = { warn: () => undefined }

async function proxied(): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
  const url = new URL(POSTGRES_URL)
  url.host = new URL(proxy.url).host
  return { proxy, url: url.toString() }
}

function failingWith(ds: Dataspace, pattern: RegExp): boolean {
  const health = ds.backendHealth
  return health !== undefined && !health.ok && pattern.test(health.error)
}

describe('postgres backend: a database that stops answering', { skip: postgresSkip }, () => {
  before(() => dropSchema(schema))
  after(() => dropSchema(schema))

  it('fails a write that gets no answer, reports it, and writes it once when answers return', async () => {
    const { proxy, url } = await proxied()
    const writer = await openDataspace({
      backend: postgresBackend({ url, schema, queryTimeoutMs: 300 }),
      log: quiet,
    })
    try {
      proxy.mute()
      const write = writer.process('w').assert('job', 'silent', { n: 1 })
      await until(() => failingWith(writer, /timeout/i), 10_000, 'the write reported failing')
      proxy.cut()
      await write
      assert.equal(writer.backendHealth?.ok, true)
      const rows = await sql<{ n: string }>(
        `SELECT count(*) AS n FROM "${schema}".changes WHERE id = 'silent'`,
      )
      assert.equal(rows[0]?.n, '1')
    } finally {
      proxy.cut()
      await writer.close()
      await proxy.close()
    }
  })

  it('fails a follower’s feed read that gets no answer, and catches up when answers return', async () => {
    const writer = await openDataspace({ backend: postgresBackend({ url: POSTGRES_URL, schema }) })
    const { proxy, url } = await proxied()
    const follower = await openDataspace({
      backend: postgresBackend({ url, schema, follow: true, queryTimeoutMs: 300 }),
      followPollMs: 50,
      log: quiet,
    })
    try {
      proxy.mute()
      await writer.process('w').assert('job', 'unheard', { n: 2 })
      await until(() => failingWith(follower, /timeout/i), 10_000, 'the feed read failing')
      proxy.cut()
      await until(
        () => follower.backendHealth?.ok === true && follower.revision === writer.revision,
        10_000,
        'caught up',
      )
      assert.equal((await follower.get('job', 'unheard'))?.id, 'unheard')
    } finally {
      proxy.cut()
      await follower.close()
      await writer.close()
      await proxy.close()
    }
  })

  it('checks queryTimeoutMs', () => {
    for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN, '100']) {
      assert.throws(
        () => postgresBackend({ url: POSTGRES_URL, queryTimeoutMs: bad as number }),
        { code: 'InvalidArgument' },
        String(bad),
      )
    }
    assert.doesNotThrow(() => postgresBackend({ url: POSTGRES_URL, queryTimeoutMs: Infinity }))
  })
})
