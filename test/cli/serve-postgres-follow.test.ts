// `dataspace serve --follow` (docs/server.md, "Followers"): a real follower process beside the
// real writer process on one fresh PostgreSQL schema. The follower takes no schema lock, logs
// that it follows, serves `list` equal to the writer's, refuses `assert` with `Unavailable`, and
// says `role: 'follower'` in /readyz.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'
import { until } from '../client/helpers.js'
import { runCli, startServe } from './helpers.js'
import type { ServeProcess } from './helpers.js'

const schema = `ds_serve_follow_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

async function listJson(url: string): Promise<unknown> {
  const result = await runCli(url, ['list', 'task', '-o', 'json'])
  assert.equal(result.code, 0, result.stderr)
  return (JSON.parse(result.stdout) as { items: unknown }).items
}

describe('dataspace serve --follow', { skip: postgresSkip }, () => {
  it(
    'follows the writer: reads equal, writes refused, role follower',
    { timeout: 60_000 },
    async () => {
      const url = new URL(POSTGRES_URL)
      url.searchParams.set('schema', schema)
      const writer = await startServe(['--backend', url.toString()])
      let follower: ServeProcess | undefined
      try {
        // The env form, as an orchestrator would set it; no lock refusal beside the writer.
        follower = await startServe(['--backend', url.toString()], { DATASPACE_FOLLOW: '1' })
        let stderr = ''
        follower.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
        await until(() => stderr.includes('"server started"'), 5_000, 'the start log')
        const started = stderr
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as { msg: string; role?: string; backend?: string })
        assert.equal(started.find((l) => l.msg === 'server started')?.role, 'follower', stderr)
        assert.match(started.find((l) => l.msg === 'dataspace opened')?.backend ?? '', /follower/)

        const wrote = await runCli(writer.url, ['assert', 'task', 't1', '{"n":1}'])
        assert.equal(wrote.code, 0, wrote.stderr)
        const expected = await listJson(writer.url)
        await until(
          async () => JSON.stringify(await listJson(follower!.url)) === JSON.stringify(expected),
          10_000,
          'the follower lists what the writer wrote',
        )

        const refused = await runCli(follower.url, ['assert', 'task', 't2', '{"n":2}'])
        assert.equal(refused.code, 1)
        assert.match(refused.stderr, /^error: Unavailable: [^\n]*follow/)

        const ready = await fetch(`${follower.url}/readyz`)
        assert.equal(ready.status, 200)
        assert.equal(((await ready.json()) as { role: string }).role, 'follower')

        // The backend's own errors reach the log: here its LISTEN connection is killed (it
        // reconnects by itself), which nobody would otherwise see.
        await sql(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`,
          [`dataspace follower schema=${schema} %`],
        )
        await until(() => stderr.includes('"postgres backend error"'), 10_000, 'the error logged')
        assert.equal(await follower.stop('SIGTERM'), 0)
      } finally {
        await follower?.stop('SIGKILL')
        assert.equal(await writer.stop('SIGTERM'), 0)
      }
    },
  )
})
