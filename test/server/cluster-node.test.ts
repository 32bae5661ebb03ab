// A cluster node's server (docs/cluster.md, "The write turn"): /readyz says `role: 'node'`, and
// /metrics counts the write turns it took (`dataspace_cluster_write_turns_total`), which a
// write makes grow; a single server's stays 0.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { seriesValue } from './helpers.js'

const schema = `ds_srv_cluster_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

describe('a cluster node’s server', { skip: postgresSkip }, () => {
  it('says it is a node, and counts its write turns in /metrics', async () => {
    const ds = await openDataspace({
      backend: postgresBackend({ url: POSTGRES_URL, schema, cluster: true, onError: () => {} }),
      log: { warn: () => {} },
    })
    const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
    try {
      const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { role: string }
      assert.equal(ready.role, 'node')
      const turns = async (): Promise<number | undefined> =>
        seriesValue(
          await (await fetch(`${server.url}/metrics`)).text(),
          'dataspace_cluster_write_turns_total',
        )
      const before = (await turns()) ?? -1
      assert.ok(before >= 0, 'the series is there')
      await ds.process('p').assert('task', 't1', { n: 1 }, { owner: null })
      assert.ok(((await turns()) ?? 0) > before)
    } finally {
      await server.close()
      await ds.close()
    }
  })

  it('a single server’s count stays 0', async () => {
    const ds = await openDataspace()
    const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
    try {
      await ds.process('p').assert('task', 't', {})
      const metrics = await (await fetch(`${server.url}/metrics`)).text()
      assert.equal(seriesValue(metrics, 'dataspace_cluster_write_turns_total'), 0)
    } finally {
      await server.close()
      await ds.close()
    }
  })
})
