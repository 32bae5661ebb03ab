// A write re-sent after a server restart takes effect once (docs/backends.md, "Answers"): the
// answer is stored with the commit it answers, so a server SIGKILLed after the write was durable
// answers the re-sent call (same session, same call id) from storage instead of applying it
// again.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { POSTGRES_URL, dropSchema, postgresSkip } from '../postgres-env.js'
import Database from 'better-sqlite3'
import pg from 'pg'
import { connect } from '../../src/client/index.js'
import { freePort, sleep, startServerProcess, TcpProxy, until } from '../client/helpers.js'
import type { Child } from '../client/helpers.js'
import { RawWs } from '../server/ws-helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-answers-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const schemas: string[] = []
after(async () => {
  for (const schema of schemas) await dropSchema(schema)
})

const backends: readonly (readonly [name: string, spec: () => string, skip: string | false])[] = [
  ['sqlite', () => `sqlite:${join(dir, `answers-${Date.now()}.db`)}`, false],
  [
    'postgres',
    () => {
      const schema = `ds_answers_${process.pid}_${Date.now()}`
      schemas.push(schema)
      return `${POSTGRES_URL}?schema=${schema}`
    },
    postgresSkip,
  ],
]

/** The writes under test: each a call whose second application would differ or fail. */
const WRITES: readonly (readonly [op: string, args: unknown])[] = [
  ['assert', { kind: 'job', id: 'a', data: { n: 1 }, options: { ifRevision: 0 } }],
  [
    'transact',
    {
      request: {
        if: [{ kind: 'job', id: 't', revision: 0 }],
        then: [{ op: 'assert', kind: 'job', id: 't', data: 1 }],
      },
    },
  ],
  ['kv.put', { bucket: 'cfg', key: 'k', value: 1, options: { ifRevision: 0 } }],
  ['claim', { kind: 'slot', options: { patch: { taken: true }, fields: 'taken=false' } }],
]

for (const [name, spec, skip] of backends) {
  describe(`${name} backend: answers survive a restart (real processes)`, { skip }, () => {
    it('answers a re-sent write from storage after SIGKILL: same answer, applied once', async () => {
      const port = await freePort()
      const backend = spec()
      let server: Child & { url: string } = await startServerProcess(port, backend)
      try {
        const first = new RawWs(server.url)
        const welcome = await first.hello({ ttl: 30_000 })
        const session = welcome.session!
        // A free slot to claim, and only one.
        const pid = session.pid
        const withPid = (op: string, args: unknown): unknown =>
          op.startsWith('kv.') ? args : { pid, ...(args as object) }
        const seeded = await first.call(1, 'assert', {
          pid,
          kind: 'slot',
          id: 's1',
          data: { taken: false },
          options: { owner: null },
        })
        assert.equal(seeded.type, 'result', JSON.stringify(seeded))
        const answers = new Map<number, unknown>()
        let id = 10
        for (const [op, args] of WRITES) {
          const answer = await first.call(++id, op, withPid(op, args))
          assert.equal(answer.type, 'result', `${op}: ${JSON.stringify(answer)}`)
          answers.set(id, answer.value)
        }
        const revision = await first.call(++id, 'get', { kind: 'job', id: 'a' })
        first.close()
        // Every answer above was sent after its write was durable: the crash loses only answers.
        await server.kill('SIGKILL')
        server = await startServerProcess(port, backend)
        const again = new RawWs(server.url)
        const resumed = await again.hello({
          resume: { session: session.id, resumeToken: session.resumeToken },
        })
        assert.equal(resumed.resumed, true, JSON.stringify(resumed))
        const before = await again.call(100, 'list', { kind: 'job' })
        id = 10
        for (const [op, args] of WRITES) {
          const answer = await again.call(++id, op, withPid(op, args))
          assert.equal(answer.type, 'result', `re-sent ${op}: ${JSON.stringify(answer)}`)
          assert.deepEqual(answer.value, answers.get(id), `re-sent ${op} answered as before`)
        }
        const afterwards = await again.call(101, 'list', { kind: 'job' })
        assert.deepEqual(
          (afterwards.value as { revision: number }).revision,
          (before.value as { revision: number }).revision,
          'nothing was applied again',
        )
        assert.ok(revision.type === 'result')
        again.close()
      } finally {
        await server.kill('SIGKILL')
      }
    })

    it('the client: a write whose answer was lost in a crash takes effect once', async () => {
      const port = await freePort()
      const backend = spec()
      let server: Child & { url: string } = await startServerProcess(port, backend)
      const proxy = await TcpProxy.start(port)
      const client = await connect(proxy.url, {
        name: 'writer',
        ttl: 30_000,
        backoff: { initialMs: 20, maxMs: 200 },
      })
      try {
        // The server gets the call and commits it; its answer never reaches the client.
        proxy.mute()
        const write = client.session.assert('job', 'once', { n: 1 }, { ifRevision: 0 })
        await until(
          async () => (await storedRevision(backend, server.url, 'job', 'once')) !== undefined,
          10_000,
          'the write durable',
        )
        const durable = await storedRevision(backend, server.url, 'job', 'once')
        await server.kill('SIGKILL')
        server = await startServerProcess(port, backend)
        proxy.cut() // the client reconnects, resumes its session and re-sends the call
        const record = await write
        assert.equal(record.revision, durable, 'answered with the original commit')
        await sleep(50)
        assert.equal(
          await storedRevision(backend, server.url, 'job', 'once'),
          durable,
          'applied once',
        )
      } finally {
        await client.close()
        await proxy.close()
        await server.kill('SIGKILL')
      }
    })
  })
}

describe('sqlite backend: stored answers are bounded and go with their session', () => {
  it('keeps the latest 1024 answers of a session, and none once it ended', async () => {
    const port = await freePort()
    const path = join(dir, `bound-${Date.now()}.db`)
    // The server holds the file locked: it is read after a SIGKILL ends the server.
    let server = await startServerProcess(port, `sqlite:${path}`)
    try {
      const ws = new RawWs(server.url)
      const welcome = await ws.hello({ ttl: 30_000 })
      const session = welcome.session!
      const pid = session.pid
      const calls = Array.from({ length: 1_100 }, (_, i) => ({
        type: 'call',
        id: i + 1,
        op: 'assert',
        args: { pid, kind: 'n', id: String(i), data: i },
      }))
      ws.send(calls)
      await ws.next((m) => m.id === 1_100, 20_000, 'the last answer')
      const count = (): number => {
        const db = new Database(path, { readonly: true })
        try {
          return (db.prepare('SELECT count(*) AS n FROM answers').get() as { n: number }).n
        } finally {
          db.close()
        }
      }
      await server.kill('SIGKILL')
      assert.equal(count(), 1_024, '1024 stored answers')
      server = await startServerProcess(port, `sqlite:${path}`)
      const again = new RawWs(server.url)
      const resumed = await again.hello({
        ttl: 30_000,
        resume: { session: session.id, resumeToken: session.resumeToken },
      })
      assert.equal(resumed.resumed, true)
      const exited = await again.call(2_000, 'process.exit', { pid })
      assert.equal(exited.type, 'result')
      await server.kill('SIGKILL')
      assert.equal(count(), 0, 'no stored answers after the session ended')
      again.close()
    } finally {
      await server.kill('SIGKILL')
    }
  })
})

/**
 * The stored revision of a record. PostgreSQL is read directly; a SQLite file is locked by its
 * server (one server per file), so it is read through the server, whose reads are released only
 * once what they show is durable (docs/backends.md, "What watchers and readers see").
 */
async function storedRevision(
  backend: string,
  serverUrl: string,
  kind: string,
  id: string,
): Promise<number | undefined> {
  if (backend.startsWith('sqlite:')) {
    const res = await fetch(`${serverUrl}/v1/records/${kind}/${id}`)
    if (res.status === 404) return undefined
    return ((await res.json()) as { revision: number }).revision
  }
  const url = new URL(backend)
  const schema = url.searchParams.get('schema') as string
  url.searchParams.delete('schema')
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    const { rows } = await client.query<{ revision: string }>(
      `SELECT revision FROM "${schema}".records WHERE kind = $1 AND id = $2`,
      [kind, id],
    )
    return rows[0] === undefined ? undefined : Number(rows[0].revision)
  } catch {
    return undefined // the schema is not there yet
  } finally {
    await client.end()
  }
}
