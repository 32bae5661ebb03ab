// The README's commands as a new user types them: `npm start` and `npm run -s dataspace -- …`.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from '../client/helpers.js'
import { execTool } from '../package/exec-tool.js'
import { exitCode, OutputReader, startServe } from './helpers.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Whether nothing listens on `port`: we can listen there ourselves. */
async function portFree(port: number): Promise<boolean> {
  const probe = createServer()
  probe.listen(port, '127.0.0.1')
  try {
    await Promise.race([
      once(probe, 'listening'),
      once(probe, 'error').then(([error]) => Promise.reject(error as Error)),
    ])
  } catch {
    return false
  }
  probe.close()
  await once(probe, 'close')
  return true
}

async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return check()
}

describe('npm scripts', () => {
  it('SIGTERM to `npm start` stops the server: no process left, the port is free', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dataspace-npm-start-'))
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATASPACE_PORT: '0',
        DATASPACE_BACKEND: `sqlite:${join(dir, 'ds.db')}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    npm.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    let serverPid: number | undefined
    try {
      const [, url = ''] = await new OutputReader(npm).next(/dataspace listening on (\S+)\n/)
      const port = Number(new URL(url).port)
      // The server logs its own pid (pino's `pid`) in its first line.
      const started = stderr.split('\n').find((line) => line.includes('"server started"'))
      serverPid = (JSON.parse(started ?? '{}') as { pid?: number }).pid
      assert.equal(typeof serverPid, 'number', stderr)
      assert.equal((await fetch(`${url}/livez`)).status, 200)

      npm.kill('SIGTERM')
      const exited = await waitFor(() => npm.exitCode !== null || npm.signalCode !== null, 15_000)
      assert.ok(exited, 'npm exits after SIGTERM')
      const pid = serverPid as number
      assert.ok(await waitFor(() => !alive(pid), 10_000), `server pid ${pid} still runs`)
      assert.ok(await portFree(port), `port ${port} is free`)
      assert.match(
        stderr,
        /"msg":"shutting down".*"signal":"SIGTERM"|"signal":"SIGTERM".*"msg":"shutting down"/,
      )
    } finally {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL')
      // What the old `npm start` left behind: never leave it running past the test.
      if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, 'SIGKILL')
      await exitCode(npm)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('`npm run -s dataspace -- list KIND -o json` prints JSON and nothing else', async () => {
    const serve = await startServe()
    try {
      const env = { DATASPACE_URL: serve.url }
      const put = await execTool(
        'npm',
        ['run', '-s', 'dataspace', '--', 'assert', 'api.route', 'health', '{"path":"/health"}'],
        { cwd: ROOT, env, timeout: 30_000 },
      )
      assert.equal(put.code, 0, put.stderr)
      const list = await execTool(
        'npm',
        ['run', '-s', 'dataspace', '--', 'list', 'api.route', '-o', 'json'],
        { cwd: ROOT, env, timeout: 30_000 },
      )
      assert.equal(list.code, 0, list.stderr)
      const page = JSON.parse(list.stdout) as { items: { id: string }[] }
      assert.deepEqual(
        page.items.map((r) => r.id),
        ['health'],
      )
    } finally {
      await serve.stop()
    }
  })
})
