// PostgreSQL going away under load, as a restart looks from the server: every connection is cut
// and new ones are refused for a while (a TCP proxy in front of the database, so the shared
// service itself is left alone). Writers waiting longer than the timeout get `Unavailable`;
// when the database is back the server reconnects, and nothing acknowledged is lost.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace, Unavailable } from '../../src/index.js'
import { sleep, TcpProxy, until } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const schema = `ds_outage_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

describe('postgres backend: the database restarts under load', { skip: postgresSkip }, () => {
  it('answers Unavailable while it is gone, reconnects, and loses nothing acknowledged', async () => {
    const target = new URL(POSTGRES_URL)
    const proxy = await TcpProxy.start(Number(target.port || 5432))
    const proxied = new URL(POSTGRES_URL)
    proxied.host = new URL(proxy.url).host
    const backendOptions = { url: proxied.toString(), schema, onError: () => {} }
    const warn = console.warn
    console.warn = () => {} // the runtime's retry warnings are the expected noise here
    try {
      const ds = await openDataspace({
        backend: postgresBackend(backendOptions),
        durableTimeoutMs: 300,
      })
      const writer = ds.process('writer')
      const acked: string[] = []
      const unavailable: string[] = []
      let stop = false
      const loops = Array.from({ length: 4 }, async (_, lane) => {
        for (let i = 0; !stop; i++) {
          const id = `${lane}-${i}`
          try {
            await writer.assert('load', id, { i }, { owner: null })
            acked.push(id)
          } catch (error) {
            assert.ok(error instanceof Unavailable, String(error))
            unavailable.push(id)
          }
        }
      })
      await until(async () => acked.length >= 200, 10_000, 'writes before the outage')
      proxy.down()
      await until(async () => unavailable.length > 0, 10_000, 'Unavailable during the outage')
      await sleep(200)
      proxy.up()
      const resumedAt = acked.length
      await until(async () => acked.length >= resumedAt + 200, 20_000, 'writes after the outage')
      stop = true
      await Promise.all(loops)
      await ds.close()

      const again = await openDataspace({ backend: postgresBackend(backendOptions) })
      const stored = new Set((await again.list('load')).items.map((r) => r.id))
      const lost = acked.filter((id) => !stored.has(id))
      assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged writes lost`)
      await again.close()
    } finally {
      console.warn = warn
      await proxy.close()
    }
  })
})
