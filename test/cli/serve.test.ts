import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { WebSocket } from 'ws'
import {
  COMMANDS,
  DEFAULT_BACKEND,
  parseBackend,
  serveSettings,
  UsageError,
} from '../../src/cli/index.js'
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
      backend: DEFAULT_BACKEND,
      insecure: false,
      follow: false,
      cluster: false,
      logLevel: 'info',
      limits: {},
      shutdownTimeoutMs: 10_000,
    })
    assert.equal(settings(['--shutdown-timeout', '2500']).shutdownTimeoutMs, 2500)
    assert.equal(settings([], { DATASPACE_SHUTDOWN_TIMEOUT: '700' }).shutdownTimeoutMs, 700)
    assert.throws(() => settings(['--shutdown-timeout', '0']), UsageError)
    assert.throws(() => settings(['--shutdown-timeout', '1.5s']), UsageError)
    const env = { DATASPACE_HOST: '::1', DATASPACE_PORT: '8000', DATASPACE_BACKEND: 'memory' }
    assert.equal(settings([], env).port, 8000)
    assert.equal(settings([], env).host, '::1')
    assert.equal(settings(['--port', '9000'], env).port, 9000)
    assert.throws(() => settings(['--port', '70000']), UsageError)
    assert.throws(() => settings(['--port', 'x']), UsageError)
    assert.throws(() => settings([], { DATASPACE_BACKEND: 'redis' }), /unknown backend "redis"/)
  })

  it('takes --follow or DATASPACE_FOLLOW, with a postgres:// backend only', () => {
    const pg = ['--backend', 'postgres://app@db/app']
    assert.equal(settings(pg).follow, false)
    assert.equal(settings(['--follow', ...pg]).follow, true)
    for (const on of ['1', 'true', 'TRUE']) {
      assert.equal(settings(pg, { DATASPACE_FOLLOW: on }).follow, true, on)
    }
    for (const off of ['0', 'false', '']) {
      assert.equal(settings(pg, { DATASPACE_FOLLOW: off }).follow, false, off)
    }
    assert.throws(() => settings(pg, { DATASPACE_FOLLOW: 'yes' }), /DATASPACE_FOLLOW must be/)
    const why = /--follow needs a postgres:\/\/ backend, not "memory": a follower reads/
    assert.throws(
      () => settings(['--follow', '--backend', 'memory']),
      (error: unknown) => {
        assert.ok(error instanceof UsageError)
        assert.match(error.message, why)
        return true
      },
    )
    assert.throws(() => settings([], { DATASPACE_FOLLOW: '1' }), /not "sqlite:/)
  })

  it('takes --cluster or DATASPACE_CLUSTER, with a postgres:// backend only, not with --follow', () => {
    const pg = ['--backend', 'postgres://app@db/app']
    assert.equal(settings(pg).cluster, false)
    assert.equal(settings(['--cluster', ...pg]).cluster, true)
    for (const on of ['1', 'true', 'TRUE']) {
      assert.equal(settings(pg, { DATASPACE_CLUSTER: on }).cluster, true, on)
    }
    for (const off of ['0', 'false', '']) {
      assert.equal(settings(pg, { DATASPACE_CLUSTER: off }).cluster, false, off)
    }
    assert.throws(() => settings(pg, { DATASPACE_CLUSTER: 'yes' }), /DATASPACE_CLUSTER must be/)
    const usage = (why: RegExp) => (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error))
      assert.match(error.message, why)
      return true
    }
    assert.throws(
      () => settings(['--cluster', '--backend', 'memory']),
      usage(/--cluster needs a postgres:\/\/ backend, not "memory": cluster nodes write one/),
    )
    assert.throws(() => settings([], { DATASPACE_CLUSTER: '1' }), usage(/not "sqlite:/))
    const both = usage(/--cluster and --follow exclude each other/)
    assert.throws(() => settings(['--cluster', '--follow', ...pg]), both)
    assert.throws(() => settings(pg, { DATASPACE_CLUSTER: '1', DATASPACE_FOLLOW: '1' }), both)
  })

  it('lets --cluster override DATASPACE_FOLLOW and --follow override DATASPACE_CLUSTER', () => {
    // Flags win over the environment: a shell that exports one mode can start the other.
    const pg = ['--backend', 'postgres://app@db/app']
    const mode = (argv: string[], env: Record<string, string>) => {
      const { cluster, follow } = settings([...argv, ...pg], env)
      return { cluster, follow }
    }
    assert.deepEqual(mode(['--cluster'], { DATASPACE_FOLLOW: '1' }), {
      cluster: true,
      follow: false,
    })
    assert.deepEqual(mode(['--follow'], { DATASPACE_CLUSTER: 'true' }), {
      cluster: false,
      follow: true,
    })
    const both = { DATASPACE_CLUSTER: '1', DATASPACE_FOLLOW: '1' }
    assert.deepEqual(mode(['--cluster'], both), { cluster: true, follow: false })
    assert.deepEqual(mode(['--follow'], both), { cluster: false, follow: true })
    // The flag decides the backend check too: --cluster on memory names --cluster.
    assert.throws(
      () => settings(['--cluster', '--backend', 'memory'], { DATASPACE_FOLLOW: '1' }),
      /--cluster needs a postgres:\/\/ backend/,
    )
  })

  it('parseBackend runs cluster nodes on PostgreSQL only, and says so in its label', async () => {
    await assert.rejects(
      parseBackend('memory', { cluster: true }),
      /cannot run "memory" in cluster/,
    )
    await assert.rejects(
      parseBackend('postgres://db/app', { cluster: true, follow: true }),
      /follow and cluster exclude each other/,
    )
    const spec = await parseBackend('postgres://app:secret@db/app?schema=s', { cluster: true })
    assert.equal(spec.label, 'postgres:postgres://app:***@db/app schema s (cluster node)')
  })

  it('parseBackend follows PostgreSQL only, and says so in its label', async () => {
    await assert.rejects(parseBackend('memory', { follow: true }), /cannot follow "memory"/)
    await assert.rejects(parseBackend('sqlite', { follow: true }), /cannot follow "sqlite"/)
    const spec = await parseBackend('postgres://app:secret@db/app?schema=s', { follow: true })
    assert.equal(spec.label, 'postgres:postgres://app:***@db/app schema s (follower)')
  })

  it('parseBackend takes the backend’s numeric options from the URL, checked', async () => {
    const spec = await parseBackend(
      'postgres://db/app?schema=s&queryTimeoutMs=5000&feedRetentionMs=Infinity&feedTrimRows=10',
    )
    // They are the backend's, not the driver's: gone from the URL the driver gets.
    assert.equal(spec.label, 'postgres:postgres://db/app schema s')
    await assert.rejects(parseBackend('postgres://db/app?queryTimeoutMs=soon'), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'InvalidArgument')
      assert.match(error.message, /queryTimeoutMs must be a whole number or Infinity; got "soon"/)
      return true
    })
    await assert.rejects(parseBackend('postgres://db/app?feedMaxRevisions=0'), (error: Error) => {
      assert.equal((error as { code?: string }).code, 'InvalidArgument')
      assert.match(error.message, /feedMaxRevisions must be a whole number from 1/)
      return true
    })
  })

  it('refuses --follow with memory or SQLite: a usage error, exit 2, nothing served', async () => {
    const memory = await runCli('http://unused', ['serve', '--follow', '--backend', 'memory'])
    assert.equal(memory.code, 2)
    assert.match(memory.stderr, /--follow needs a postgres:\/\/ backend, not "memory"/)
    assert.equal(memory.stdout, '')
    const sqlite = await runCli('http://unused', ['serve', '--follow', '--backend', 'sqlite'])
    assert.equal(sqlite.code, 2)
    assert.match(sqlite.stderr, /not "sqlite"/)
  })

  it('refuses --cluster with memory, or with --follow: a usage error, exit 2, nothing served', async () => {
    const memory = await runCli('http://unused', ['serve', '--cluster', '--backend', 'memory'])
    assert.equal(memory.code, 2)
    assert.match(memory.stderr, /--cluster needs a postgres:\/\/ backend, not "memory"/)
    assert.equal(memory.stdout, '')
    const both = await runCli('http://unused', [
      'serve',
      '--cluster',
      '--follow',
      '--backend',
      'postgres://app@db/app',
    ])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /--cluster and --follow exclude each other/)
    assert.equal(both.stdout, '')
  })

  it('takes browser origins and host names to allow', () => {
    const flags = settings(['--allow-origin', 'http://localhost:3000, https://app.example'])
    assert.deepEqual(flags.allowedOrigins, ['http://localhost:3000', 'https://app.example'])
    const env = settings([], { DATASPACE_ALLOW_HOST: 'dataspace.internal' })
    assert.deepEqual(env.allowedHosts, ['dataspace.internal'])
  })

  it('serves on the port it prints, and exits 0 on SIGTERM', async () => {
    const serve = await startServe()
    const live = await fetch(`${serve.url}/livez`)
    assert.equal(live.status, 200)
    assert.equal(await serve.stop('SIGTERM'), 0)
  })

  it('on SIGTERM sends goodbye, closes WebSockets with 1001, logs it and exits 0', async () => {
    const serve = await startServe()
    let stderr = ''
    serve.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const socket = new WebSocket(`${serve.url.replace('http', 'ws')}/v1/ws`)
    const messages: { type?: string; reason?: string }[] = []
    let welcomed: () => void = () => {}
    const welcome = new Promise<void>((resolve) => (welcomed = resolve))
    socket.on('message', (data: Buffer) => {
      const parsed = JSON.parse(data.toString()) as unknown
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        messages.push(m as { type?: string })
        if ((m as { type?: string }).type === 'welcome') welcomed()
      }
    })
    const closed = once(socket, 'close')
    await once(socket, 'open')
    socket.send(JSON.stringify({ type: 'hello', v: 1, name: 'cli-test' }))
    await welcome
    assert.equal(await serve.stop('SIGTERM'), 0)
    const [code] = (await closed) as [number]
    assert.equal(code, 1001)
    assert.equal(messages.find((m) => m.type === 'goodbye')?.reason, 'server is shutting down')
    // JSON log lines on stderr: the start, the session, the signal and the stop.
    const logs = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; signal?: string })
    const msgs = logs.map((l) => l.msg)
    for (const msg of ['server started', 'session opened', 'shutting down', 'server stopped']) {
      assert.ok(msgs.includes(msg), `${msg} in ${stderr}`)
    }
    assert.equal(logs.find((l) => l.msg === 'shutting down')?.signal, 'SIGTERM')
    assert.match(stderr, /dataspace stopped\n$/)
  })

  it('takes --log-level and --limits, or DATASPACE_LOG_LEVEL and DATASPACE_LIMITS', () => {
    assert.equal(settings(['--log-level', 'debug']).logLevel, 'debug')
    assert.equal(settings([], { DATASPACE_LOG_LEVEL: 'silent' }).logLevel, 'silent')
    assert.throws(() => settings(['--log-level', 'loud']), UsageError)
    assert.deepEqual(settings(['--limits', 'maxRecordsPerSession=10,callBurst=5']).limits, {
      maxRecordsPerSession: 10,
      callBurst: 5,
    })
    assert.deepEqual(settings([], { DATASPACE_LIMITS: 'maxStreamsPerSession=3' }).limits, {
      maxStreamsPerSession: 3,
    })
    assert.throws(() => settings(['--limits', 'maxRecords=10']), /--limits takes NAME=N/)
    assert.throws(() => settings(['--limits', 'callBurst=x']), UsageError)
  })

  it('exits 0 on SIGINT too', async () => {
    const serve = await startServe()
    assert.equal(await serve.stop('SIGINT'), 0)
  })

  it('refuses an unknown backend, from a flag or DATASPACE_BACKEND', async () => {
    const flag = await runCli('http://unused', ['serve', '--port', '0', '--backend', 'redis'])
    assert.equal(flag.code, 1)
    assert.match(flag.stderr, /^error: InvalidArgument: unknown backend "redis"[^\n]*\n$/)

    const child = spawnCli(['serve', '--port', '0'], { DATASPACE_BACKEND: 'mysql://x' })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    assert.equal(await exitCode(child), 1)
    assert.match(stderr, /unknown backend "mysql:\/\/x"/)
  })

  it('refuses a non-loopback host without auth unless --insecure', async () => {
    const refused = await runCli('http://unused', [
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--backend',
      'memory',
    ])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^error: InvalidArgument: refusing to listen on 0\.0\.0\.0/)
  })
})
