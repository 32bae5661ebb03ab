// Issue 10 "Done when", HTTP half: every route driven with generated path parameters, query
// strings and bodies (nesting, sizes, unicode edge cases, numbers — `1e999` in the body text
// parses as Infinity), several requests pipelined at once, against a server in a child process.
// After each case the process lives, /livez answers and another client's write succeeds; no
// request is answered 500.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { startChild } from './child-server.js'
import type { ChildServer } from './child-server.js'
import { args, frameText, nasty, text } from './fuzz-values.js'

const ROUTES = [
  ['GET', '/v1/records/:kind'],
  ['GET', '/v1/records/:kind/:id'],
  ['PUT', '/v1/records/:kind/:id'],
  ['DELETE', '/v1/records/:kind/:id'],
  ['GET', '/v1/explain/:kind'],
  ['GET', '/v1/watch/:kind'],
  ['POST', '/v1/transact'],
  ['POST', '/v1/claim/:kind'],
  ['POST', '/v1/send'],
  ['GET', '/v1/kv/:bucket'],
  ['GET', '/v1/kv/:bucket/:key'],
  ['PUT', '/v1/kv/:bucket/:key'],
  ['DELETE', '/v1/kv/:bucket/:key'],
  ['GET', '/v1/groups/:scope/:group'],
  ['POST', '/v1/groups/:scope/:group/join'],
  ['POST', '/v1/groups/:scope/:group/leave'],
  ['GET', '/v1/names'],
  ['GET', '/v1/names/:name'],
  ['PUT', '/v1/names/:name'],
  ['DELETE', '/v1/names/:name'],
  ['POST', '/v1/sessions'],
  ['POST', '/v1/sessions/:session/heartbeat'],
] as const

/** Percent-encodes a path segment; a lone surrogate goes as the bytes a naive encoder sends. */
function segment(value: string): string {
  try {
    return encodeURIComponent(value)
  } catch {
    return '%ED%A0%80'
  }
}

const param = fc.oneof(fc.constantFrom('fz.a', 'x', 'b', 'default', 'g', 'n'), text)
const query = fc.dictionary(
  fc.constantFrom(
    'limit',
    'continue',
    'fields',
    'labels',
    'id',
    'owner',
    'fromRevision',
    'prefix',
    'glob',
    'snapshot',
  ),
  fc.oneof(text, fc.constantFrom('1', '-1', '1.5', '1e999', 'NaN', '9007199254740993')),
  { maxKeys: 3 },
)
const request = fc.record({
  route: fc.constantFrom(...ROUTES),
  params: fc.array(param, { minLength: 4, maxLength: 4 }),
  query,
  body: fc.oneof({ weight: 3, arbitrary: args }, { weight: 1, arbitrary: nasty }),
  session: fc.constantFrom('own', 'none', 'garbage'),
})

describe('HTTP routes fuzz against a server process', () => {
  let server: ChildServer
  let writes = 0
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
  console.log(`# http fuzz: FC_SEED=${seed}`)

  const openSession = async (): Promise<{ session: string; pid: string }> => {
    const res = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'fuzz', ttl: 60_000 }),
    })
    assert.equal(res.status, 201)
    return (await res.json()) as { session: string; pid: string }
  }

  before(async () => {
    server = await startChild({ limits: { maxBodyBytes: 4 * 1024 * 1024 } })
  })
  after(() => server.close())

  it('no generated request ends, wedges or breaks the server, and none is answered 500', async () => {
    const bystander = await openSession()
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), async (batch) => {
        const own = await openSession()
        // Pipelined: all at once, as a client with several requests in flight.
        const answers = await Promise.all(
          batch.map(async (r) => {
            const [method, template] = r.route
            let i = 0
            const path = template.replace(/:\w+/g, () => segment(r.params[i++] ?? 'x'))
            const search = new URLSearchParams(r.query).toString()
            const url = `${server.url}${path}${search === '' ? '' : `?${search}`}`
            const headers: Record<string, string> = { 'content-type': 'application/json' }
            if (r.session === 'own') headers['dataspace-session'] = own.session
            if (r.session === 'garbage') headers['dataspace-session'] = 'x\u00e9'.repeat(3)
            const init: RequestInit = { method, headers, signal: AbortSignal.timeout(5_000) }
            if (method !== 'GET' && method !== 'DELETE') init.body = frameText(r.body, own.pid)
            const res = await fetch(url, init)
            // A watch is a stream: its status is what counts; stop reading it.
            if (path.startsWith('/v1/watch/') && res.status === 200) {
              await res.body?.cancel()
              return { status: res.status, text: '' }
            }
            return { status: res.status, text: await res.text() }
          }),
        )
        for (const answer of answers) assert.notEqual(answer.status, 500, answer.text.slice(0, 300))
        assert.ok(await server.alive(), `server died:\n${server.stderr()}`)
        const put = await fetch(`${server.url}/v1/records/fz.bystander/${++writes}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'dataspace-session': bystander.session },
          body: JSON.stringify({ data: { n: writes } }),
        })
        assert.equal(put.status, 200, await put.text())
        await fetch(`${server.url}/v1/sessions/${own.session}`, { method: 'DELETE' }).then((r) =>
          r.arrayBuffer(),
        )
      }),
      { seed, numRuns: 80, interruptAfterTimeLimit: 25_000 },
    )
  })
})
