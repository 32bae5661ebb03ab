// What a web page can make a loopback server do (issue 10 item 11): cross-origin requests and
// WebSockets are refused unless their origin is allowed, a Host other than the loopback names
// is refused (DNS rebinding), a write's body must be JSON (no CORS-safelisted text/plain), and
// CORS headers appear only for configured origins.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { describe, it } from 'node:test'
import { HttpClient } from '../../src/cli/http-client.js'
import { connect } from '../../src/client/index.js'
import { start } from './helpers.js'
import { RawWs } from './ws-helpers.js'

interface RawResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A request with exactly these headers (fetch cannot set Host, nor leave out its own). */
function raw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      )
    })
    req.on('error', reject)
    req.end(body)
  })
}

const EVIL = 'http://evil.example'
const corsHeaders = (headers: IncomingHttpHeaders): string[] =>
  Object.keys(headers).filter((name) => name.startsWith('access-control-'))

describe('browsers and a loopback server', () => {
  it('refuses a WebSocket whose Origin is another site (403), before any hello', async () => {
    const h = await start()
    const ws = new RawWs(h.url, { origin: EVIL })
    try {
      await ws.closedWithin()
      assert.equal(ws.refusedStatus, 403)
      assert.ok(!ws.received.some((m) => m.type === 'welcome'))
      assert.equal(h.server.stats.sessions, 0)
    } finally {
      ws.close()
      await h.close()
    }
  })

  it('refuses HTTP requests whose Origin is another site, reads included (403)', async () => {
    const h = await start()
    try {
      for (const [method, path, body] of [
        ['GET', '/v1/records/x', undefined],
        ['POST', '/v1/sessions', '{"name":"evil"}'],
      ] as const) {
        const res = await raw(
          h.url,
          method,
          path,
          { origin: EVIL, 'content-type': 'application/json' },
          body,
        )
        assert.equal(res.status, 403, `${method} ${path}: ${res.body}`)
        assert.match(res.body, /"code":"Forbidden"/)
        assert.match(res.body, /allowedOrigins|--allow-origin/)
        assert.deepEqual(corsHeaders(res.headers), [])
      }
      assert.equal(h.server.stats.sessions, 0)
    } finally {
      await h.close()
    }
  })

  it('refuses a write whose body is not application/json (415), e.g. a text/plain form post', async () => {
    const h = await start()
    try {
      const res = await raw(
        h.url,
        'POST',
        '/v1/sessions',
        { 'content-type': 'text/plain' },
        '{"name":"x"}',
      )
      assert.equal(res.status, 415, res.body)
      assert.match(res.body, /"code":"InvalidArgument"/)
      assert.match(res.body, /application\/json/)
      const none = await raw(h.url, 'POST', '/v1/sessions', {}, '{"name":"x"}')
      assert.equal(none.status, 415, none.body)
      assert.equal(h.server.stats.sessions, 0)
      // JSON with a charset is JSON; a request without a body needs no type.
      const json = await raw(
        h.url,
        'POST',
        '/v1/sessions',
        { 'content-type': 'application/json; charset=utf-8' },
        '{"name":"x"}',
      )
      assert.equal(json.status, 201, json.body)
      const { session } = JSON.parse(json.body) as { session: string }
      const heartbeat = await raw(h.url, 'POST', `/v1/sessions/${session}/heartbeat`)
      assert.equal(heartbeat.status, 200, heartbeat.body)
    } finally {
      await h.close()
    }
  })

  it('refuses a Host other than the loopback names on a loopback bind (DNS rebinding)', async () => {
    const h = await start()
    try {
      const port = new URL(h.url).port
      const rebound = await raw(h.url, 'GET', '/v1/records/x', { host: `evil.example:${port}` })
      assert.equal(rebound.status, 403, rebound.body)
      assert.match(rebound.body, /Host/)
      const ws = new RawWs(h.url, { host: `evil.example:${port}` })
      await ws.closedWithin()
      assert.equal(ws.refusedStatus, 403)
      ws.close()
      // The name decides: a port forward in front of a loopback name changes only the port.
      for (const host of [
        `localhost:${port}`,
        `127.0.0.1:${port}`,
        `[::1]:${port}`,
        'localhost:1',
      ]) {
        assert.equal((await raw(h.url, 'GET', '/v1/records/x', { host })).status, 200, host)
      }
    } finally {
      await h.close()
    }
  })

  it('takes configured hosts', async () => {
    const h = await start({ allowedHosts: ['dataspace.internal'] })
    try {
      const port = new URL(h.url).port
      const res = await raw(h.url, 'GET', '/v1/records/x', { host: `dataspace.internal:${port}` })
      assert.equal(res.status, 200)
      const other = await raw(h.url, 'GET', '/v1/records/x', { host: `evil.example:${port}` })
      assert.equal(other.status, 403)
    } finally {
      await h.close()
    }
  })

  it('sends no CORS headers by default, and answers preflights only for allowed origins', async () => {
    const h = await start()
    try {
      const plain = await raw(h.url, 'GET', '/v1/records/x')
      assert.equal(plain.status, 200)
      assert.deepEqual(corsHeaders(plain.headers), [])
      const preflight = await raw(h.url, 'OPTIONS', '/v1/sessions', {
        origin: EVIL,
        'access-control-request-method': 'POST',
      })
      assert.equal(preflight.status, 403)
      assert.deepEqual(corsHeaders(preflight.headers), [])
    } finally {
      await h.close()
    }
    const app = 'http://app.example:3000'
    const allowed = await start({ allowedOrigins: [app] })
    const ws = new RawWs(allowed.url, { origin: app })
    try {
      const preflight = await raw(allowed.url, 'OPTIONS', '/v1/records/k/1', {
        origin: app,
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'content-type, dataspace-session',
      })
      assert.equal(preflight.status, 204, preflight.body)
      assert.equal(preflight.headers['access-control-allow-origin'], app)
      assert.match(String(preflight.headers['access-control-allow-methods']), /PUT/)
      assert.match(String(preflight.headers['access-control-allow-headers']), /dataspace-session/)
      assert.match(String(preflight.headers.vary), /Origin/i)
      const res = await raw(
        allowed.url,
        'POST',
        '/v1/sessions',
        { origin: app, 'content-type': 'application/json' },
        '{"name":"app"}',
      )
      assert.equal(res.status, 201, res.body)
      assert.equal(res.headers['access-control-allow-origin'], app)
      assert.equal((await ws.hello()).type, 'welcome')
      const evil = await raw(allowed.url, 'GET', '/v1/records/x', { origin: EVIL })
      assert.equal(evil.status, 403)
    } finally {
      ws.close()
      await allowed.close()
    }
  })

  it('still serves our own client and CLI, which send no Origin', async () => {
    const h = await start()
    try {
      const client = await connect(h.url, { name: 'own' })
      try {
        await client.session.assert('own.kind', 'a', { n: 1 })
        assert.equal((await client.get('own.kind', 'a'))?.owner, client.session.id)
      } finally {
        await client.close()
      }
      const cli = new HttpClient(h.url)
      await cli.withSession((session) =>
        cli.request('PUT', '/v1/records/own.kind/b', {
          session,
          body: { data: { n: 2 }, owner: null },
        }),
      )
      assert.deepEqual((await h.ds.get('own.kind', 'b'))?.data, { n: 2 })
    } finally {
      await h.close()
    }
  })
})
