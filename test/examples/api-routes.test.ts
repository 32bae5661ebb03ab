// The dynamic-API-routes example (Saluki PR #1178's use case) over real HTTP: subsystems assert
// `api.route` records, the server serves them live, and a route goes when its subsystem goes.
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createDataspace, NotOwner, SchemaViolation } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { API_ROUTE_KIND, defineApiRouteKind } from '../../examples/api-routes/route-kind.js'
import type { ApiRouteInput } from '../../examples/api-routes/route-kind.js'
import { RouteTable } from '../../examples/api-routes/route-table.js'
import type { RouteChange } from '../../examples/api-routes/route-table.js'
import { startApiServer } from '../../examples/api-routes/server.js'
import type { ApiServer } from '../../examples/api-routes/server.js'

interface Reply {
  status: number
  json: Record<string, unknown>
}

async function get(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) })
  const text = await res.text()
  return {
    status: res.status,
    json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  }
}

/** Retries `check` until it passes or `ms` runs out; the last failure is what gets reported. */
async function eventually<T>(check: () => Promise<T>, ms = 2000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}

/** Polls `url` until it answers `status`, and returns that reply. */
function until(url: string, status: number): Promise<Reply> {
  return eventually(async () => {
    const reply = await get(url)
    assert.equal(reply.status, status, `${url} → ${reply.status} ${JSON.stringify(reply.json)}`)
    return reply
  })
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

const route = (path: string, body?: ApiRouteInput['body']): ApiRouteInput =>
  body === undefined ? { path } : { path, body }

describe('api-routes example server', () => {
  let ds: Dataspace
  let server: ApiServer
  beforeEach(async () => {
    ds = createDataspace()
    await defineApiRouteKind(ds)
    server = await startApiServer({ ds, port: 0, host: '127.0.0.1' })
  })
  afterEach(async () => {
    await server.close()
    await ds.close()
  })

  it('serves a route asserted by a process, naming its owner', async () => {
    const health = ds.process('health')
    await health.assert(API_ROUTE_KIND, 'health', route('/health', { status: 'ok' }))
    const reply = await until(`${server.url}/health`, 200)
    assert.equal(reply.json['servedBy'], health.id)
    assert.equal(reply.json['route'], 'health')
    assert.deepEqual(reply.json['body'], { status: 'ok' })
  })

  it('answers unknown paths with a 404 JSON error', async () => {
    const reply = await get(`${server.url}/nope`)
    assert.equal(reply.status, 404)
    assert.equal(reply.json['error'], 'NotFound')
  })

  it('serves the new body after an owner overwrite', async () => {
    const stats = ds.process('stats')
    await stats.assert(API_ROUTE_KIND, 'stats', route('/stats', { tick: 1 }))
    await until(`${server.url}/stats`, 200)
    await stats.assert(API_ROUTE_KIND, 'stats', route('/stats', { tick: 2 }))
    await eventually(async () =>
      assert.deepEqual((await get(`${server.url}/stats`)).json['body'], { tick: 2 }),
    )
  })

  it('stops serving a retracted route', async () => {
    const p = ds.process('p')
    await p.assert(API_ROUTE_KIND, 'gone', route('/gone'))
    await until(`${server.url}/gone`, 200)
    await p.retract(API_ROUTE_KIND, 'gone')
    await until(`${server.url}/gone`, 404)
  })

  for (const ending of ['returns', 'throws', 'is aborted'] as const) {
    it(`drops the routes of a spawned subsystem that ${ending}`, async () => {
      const registered = deferred()
      const finish = deferred()
      const abort = new AbortController()
      const proc = ds.spawn(
        'subsystem',
        async (self) => {
          await self.assert(API_ROUTE_KIND, 'a', route('/a'))
          await self.assert(API_ROUTE_KIND, 'b', route('/b', [1, 2]))
          registered.resolve()
          await finish.promise
          if (ending === 'throws') throw new Error('subsystem crashed')
        },
        { signal: abort.signal },
      )
      await registered.promise
      assert.equal((await until(`${server.url}/a`, 200)).json['servedBy'], proc.id)
      await until(`${server.url}/b`, 200)
      if (ending === 'is aborted') abort.abort()
      else finish.resolve()
      const reason = await proc.exited
      if (ending === 'returns') assert.equal(reason, 'normal')
      if (ending === 'is aborted') assert.equal(reason, 'aborted')
      if (ending === 'throws')
        assert.ok(typeof reason === 'object' && reason.error instanceof Error)
      await until(`${server.url}/a`, 404)
      await until(`${server.url}/b`, 404)
      finish.resolve()
    })
  }

  it('serves routes that existed before it started, from its first request', async () => {
    await ds.process('early').assert(API_ROUTE_KIND, 'early', route('/early', 'hi'))
    const late = await startApiServer({ ds, port: 0, host: '127.0.0.1' })
    try {
      const reply = await get(`${late.url}/early`) // no polling: the snapshot is in before listen
      assert.equal(reply.status, 200)
      assert.equal(reply.json['body'], 'hi')
    } finally {
      await late.close()
    }
  })

  it('serves two subsystems side by side, each named as the server of its own route', async () => {
    const health = ds.process('health')
    const stats = ds.process('stats')
    await health.assert(API_ROUTE_KIND, 'health', route('/health'))
    await stats.assert(API_ROUTE_KIND, 'stats', route('/stats'))
    assert.equal((await until(`${server.url}/health`, 200)).json['servedBy'], health.id)
    assert.equal((await until(`${server.url}/stats`, 200)).json['servedBy'], stats.id)
    await stats.exit()
    await until(`${server.url}/stats`, 404)
    assert.equal((await get(`${server.url}/health`)).status, 200)
  })

  it('refuses a non-owner writing the same route id, and keeps serving the owner', async () => {
    const owner = ds.process('owner')
    const intruder = ds.process('intruder')
    await owner.assert(API_ROUTE_KIND, 'health', route('/health', 'mine'))
    await assert.rejects(
      intruder.assert(API_ROUTE_KIND, 'health', route('/health', 'theirs')),
      (err) => {
        assert.ok(err instanceof NotOwner)
        assert.equal(err.owner, owner.id)
        return true
      },
    )
    const reply = await until(`${server.url}/health`, 200)
    assert.equal(reply.json['servedBy'], owner.id)
    assert.equal(reply.json['body'], 'mine')
  })

  it('hands a contested path to the next subsystem when the first one exits', async () => {
    const primary = ds.process('primary')
    const standby = ds.process('standby')
    await primary.assert(API_ROUTE_KIND, 'health-primary', route('/health'))
    await standby.assert(API_ROUTE_KIND, 'health-standby', route('/health'))
    assert.equal((await until(`${server.url}/health`, 200)).json['servedBy'], primary.id)
    await primary.exit()
    await eventually(async () =>
      assert.equal((await get(`${server.url}/health`)).json['servedBy'], standby.id),
    )
  })

  it('rejects malformed routes through the kind schema, and answers 405 for a wrong method', async () => {
    const p = ds.process('p')
    await assert.rejects(p.assert(API_ROUTE_KIND, 'bad', { path: 'no-slash' }), SchemaViolation)
    await p.assert(API_ROUTE_KIND, 'submit', { method: 'POST', path: '/submit' })
    assert.equal((await until(`${server.url}/submit`, 405)).json['error'], 'MethodNotAllowed')
    assert.equal((await get(`${server.url}/submit`, { method: 'POST' })).status, 200)
  })
})

describe('RouteTable', () => {
  it('reports a snapshot, then adds, updates and owner-exit removals in commit order', async () => {
    const ds = createDataspace()
    try {
      await defineApiRouteKind(ds)
      const p = ds.process('p')
      await p.assert(API_ROUTE_KIND, 'one', route('/one'))
      const changes: RouteChange[] = []
      const removed = deferred()
      const table = await RouteTable.open(ds, {
        onChange: (change) => {
          changes.push(change)
          if (change.type === 'removed') removed.resolve()
        },
      })
      assert.equal(table.lookup('GET', '/one')?.owner, p.id)
      await p.assert(API_ROUTE_KIND, 'two', route('/two'))
      await p.assert(API_ROUTE_KIND, 'two', route('/two', 2))
      await p.exit()
      await removed.promise
      await eventually(async () => assert.equal(table.routes().length, 0))
      const summary = changes.map((c) =>
        c.type === 'removed' ? `removed:${c.route.id}:${c.reason}` : c.type,
      )
      assert.deepEqual(summary.slice(0, 3), ['rebuilt', 'added', 'updated'])
      assert.deepEqual(summary.slice(3).sort(), [
        'removed:one:owner-exit',
        'removed:two:owner-exit',
      ])
      await table.close()
    } finally {
      await ds.close()
    }
  })
})

describe('api-routes demo (main.ts)', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const children: ReturnType<typeof spawn>[] = []
  after(() => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })

  it(
    'prints its URL, serves /health, drops /ephemeral, and exits 0 on SIGTERM',
    { timeout: 60_000 },
    async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'examples/api-routes/main.ts'], {
        cwd: root,
        env: {
          ...process.env,
          DATASPACE_PORT: '0',
          DATASPACE_HOST: '127.0.0.1',
          DATASPACE_EPHEMERAL_MS: '500',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(child)
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve) => child.once('exit', (code, signal) => resolve({ code, signal })),
      )

      const url = await eventually(async () => {
        const match = /listening on (http:\/\/\S+)/.exec(stdout)
        assert.ok(match?.[1], `no "listening on" line yet; stdout: ${stdout} stderr: ${stderr}`)
        return match[1]
      }, 30_000)
      const health = await until(`${url}/health`, 200)
      assert.match(String(health.json['servedBy']), /\/health#\d+$/)
      // Its subsystem returns after 500 ms; the log line proves the route existed, then went.
      await eventually(async () => assert.match(stdout, /- GET \/ephemeral .*owner-exit/), 5000)
      assert.equal((await get(`${url}/ephemeral`)).status, 404)

      child.kill('SIGTERM')
      const timeout = new Promise<'timeout'>((resolve) =>
        setTimeout(() => resolve('timeout'), 5000).unref(),
      )
      const result = await Promise.race([exited, timeout])
      assert.notEqual(result, 'timeout', `no exit within 5 s of SIGTERM; stdout: ${stdout}`)
      assert.deepEqual(result, { code: 0, signal: null }, `stderr: ${stderr}`)
      assert.match(stdout, /stopped/)
    },
  )
})
