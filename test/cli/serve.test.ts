import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { COMMANDS, serveSettings, UsageError } from '../../src/cli/index.js'
import type { CliIo } from '../../src/cli/index.js'
import { exitCode, runCli, spawnCli, startServe } from './helpers.js'
import { parseCommand } from '../../src/cli/command.js'

function settings(
  argv: string[],
  env: Record<string, string> = {},
): ReturnType<typeof serveSettings> {
  const serve = COMMANDS.find((c) => c.name === 'serve')
  if (serve === undefined) throw new Error('no serve command')
  const io: CliIo = { stdout: () => {}, stderr: () => {}, env }
  return serveSettings(parseCommand(serve, argv, io, new AbortController().signal))
}

describe('dataspace serve', () => {
  it('takes flags over DATASPACE_* env over defaults', () => {
    assert.deepEqual(settings([]), {
      host: '127.0.0.1',
      port: 7411,
      backend: 'memory',
      insecure: false,
    })
    const env = { DATASPACE_HOST: '::1', DATASPACE_PORT: '8000', DATASPACE_BACKEND: 'memory' }
    assert.equal(settings([], env).port, 8000)
    assert.equal(settings([], env).host, '::1')
    assert.equal(settings(['--port', '9000'], env).port, 9000)
    assert.throws(() => settings(['--port', '70000']), UsageError)
    assert.throws(() => settings(['--port', 'x']), UsageError)
    assert.throws(() => settings([], { DATASPACE_BACKEND: 'redis' }), /unknown backend "redis"/)
  })

  it('serves on the port it prints, and exits 0 on SIGTERM', async () => {
    const serve = await startServe()
    const live = await fetch(`${serve.url}/livez`)
    assert.equal(live.status, 200)
    assert.equal(await serve.stop('SIGTERM'), 0)
  })

  it('exits 0 on SIGINT too', async () => {
    const serve = await startServe()
    assert.equal(await serve.stop('SIGINT'), 0)
  })

  it('refuses a backend other than memory, from a flag or DATASPACE_BACKEND', async () => {
    const flag = await runCli('http://unused', ['serve', '--port', '0', '--backend', 'sqlite'])
    assert.equal(flag.code, 1)
    assert.match(flag.stderr, /^error: InvalidArgument: unknown backend "sqlite"[^\n]*\n$/)

    const child = spawnCli(['serve', '--port', '0'], { DATASPACE_BACKEND: 'postgres' })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    assert.equal(await exitCode(child), 1)
    assert.match(stderr, /unknown backend "postgres"/)
  })

  it('refuses a non-loopback host without auth unless --insecure', async () => {
    const refused = await runCli('http://unused', ['serve', '--host', '0.0.0.0', '--port', '0'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^error: InvalidArgument: refusing to listen on 0\.0\.0\.0/)
  })
})
