import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { freePort as unusedPort } from '../client/helpers.js'
import { postgresSkip, POSTGRES_URL } from '../postgres-env.js'
import { exitCode, spawnCli } from './helpers.js'

/** `serve` with `--backend SPEC`: its exit code and everything it printed. */
async function serveWith(spec: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawnCli(['serve', '--port', '0', '--log-level', 'silent', '--backend', spec])
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  // Bounded: a server that started after all is stopped, and the test fails on its code.
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  try {
    return { code: await exitCode(child), stderr }
  } finally {
    clearTimeout(timer)
  }
}

/** Exactly one stderr line, `error: CODE: …`, naming PostgreSQL; never the password. */
function assertOneLine(stderr: string, secret: string): string {
  const lines = stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line: ${stderr}`)
  const [line = ''] = lines
  assert.match(line, /^error: \w+: .*PostgreSQL/)
  assert.ok(!line.includes(secret), `the password stays out: ${line}`)
  return line
}

describe('serve --backend postgres://… errors', () => {
  it('an unreachable server: one line naming PostgreSQL, the host, the port and the database', async () => {
    const port = await unusedPort()
    const { code, stderr } = await serveWith(`postgres://alice:s3cret@127.0.0.1:${port}/ordersdb`)
    assert.equal(code, 1)
    const line = assertOneLine(stderr, 's3cret')
    assert.ok(line.includes(`127.0.0.1:${port}`), line)
    assert.ok(line.includes('ordersdb'), line)
    assert.ok(line.includes('alice'), line)
  })

  it('a URL that does not parse: one line naming PostgreSQL, without the password', async () => {
    const { code, stderr } = await serveWith('postgres://alice:s3cret@127.0.0.1:99999/ordersdb')
    assert.notEqual(code, 0)
    assertOneLine(stderr, 's3cret')
  })

  it('a database that does not exist', { skip: postgresSkip }, async () => {
    const url = new URL(POSTGRES_URL)
    url.password = 's3cret' // the test server trusts every password
    url.pathname = '/no_such_database_for_dataspace'
    const { code, stderr } = await serveWith(url.toString())
    assert.equal(code, 1)
    const line = assertOneLine(stderr, 's3cret')
    assert.ok(line.includes('no_such_database_for_dataspace'), line)
    assert.ok(line.includes(`${url.hostname}:${url.port || 5432}`), line)
  })
})
