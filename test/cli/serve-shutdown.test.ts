// SIGTERM while storage cannot take the last writes: `dataspace serve` must still exit, within
// its shutdown deadline, non-zero, and say why — not retry the batch forever.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { sleep, TcpProxy } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { exitCode, startServe } from './helpers.js'

const schema = `ds_shutdown_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

describe('dataspace serve: shutdown with storage down', { skip: postgresSkip }, () => {
  it(
    'exits within --shutdown-timeout, non-zero, with a line saying why',
    { timeout: 60_000 },
    async () => {
      const target = new URL(POSTGRES_URL)
      const proxy = await TcpProxy.start(Number(target.port || 5432))
      try {
        const backend = new URL(POSTGRES_URL)
        backend.host = new URL(proxy.url).host
        backend.searchParams.set('schema', schema)
        const serve = await startServe([
          '--backend',
          backend.toString(),
          '--shutdown-timeout',
          '1500',
        ])
        let stderr = ''
        serve.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
        const opened = await fetch(`${serve.url}/v1/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'writer' }),
        })
        const { session } = (await opened.json()) as { session: string }
        const put = (id: string): Promise<Response> =>
          fetch(`${serve.url}/v1/records/shutdown.item/${id}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json', 'dataspace-session': session },
            body: JSON.stringify({ data: { id }, owner: null }),
          })
        assert.equal((await put('stored')).status, 200)

        proxy.down()
        // A write that can no longer be stored: its batch is retried, and shutdown must not wait
        // for it forever.
        const pending = put('unstored').catch(() => undefined)
        await sleep(300)
        const started = Date.now()
        serve.child.kill('SIGTERM')
        const code = await exitCode(serve.child)
        const took = Date.now() - started
        await pending
        assert.notEqual(code, 0, stderr)
        assert.ok(took < 1_500 + 3_000, `exited after ${took} ms`)
        assert.match(stderr, /shutdown did not finish within 1500 ms/)
        assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
      } finally {
        await proxy.close()
      }
    },
  )
})
