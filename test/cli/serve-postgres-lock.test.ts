// One single-node server per PostgreSQL schema (until cluster mode): a second `dataspace serve`
// on the schema prints one line naming the schema and the holder, and exits non-zero.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { exitCode, spawnCli, startServe } from './helpers.js'

const schema = `ds_serve_lock_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

describe('dataspace serve: one server per PostgreSQL schema', { skip: postgresSkip }, () => {
  it('refuses a second server with one line naming the holder', { timeout: 60_000 }, async () => {
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('schema', schema)
    const first = await startServe(['--backend', url.toString()])
    const second = spawnCli(['serve', '--port', '0', '--backend', url.toString()])
    let stderr = ''
    second.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    assert.notEqual(await exitCode(second), 0)
    const lines = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'))
    assert.equal(lines.length, 1, stderr)
    assert.ok(lines[0]!.includes(`"${schema}"`), stderr)
    assert.match(lines[0]!, new RegExp(`pid=${first.child.pid}\\b`))
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
    assert.equal(await first.stop('SIGTERM'), 0)

    const third = await startServe(['--backend', url.toString()])
    assert.equal((await fetch(`${third.url}/livez`)).status, 200)
    assert.equal(await third.stop('SIGTERM'), 0)
  })
})
