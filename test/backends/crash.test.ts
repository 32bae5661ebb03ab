// Crash safety with real processes: a server on a durable backend (SQLite, PostgreSQL) is SIGKILLed while a client
// writes as fast as it can; after a restart every acknowledged write is there and no
// transaction is half-applied. And a graceful restart keeps sessions: a client that comes back
// within its lease resumes its session with everything it owned.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import pg from 'pg'
import { POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import { connect } from '../../src/client/index.js'
import type { ClientStatus } from '../../src/client/index.js'
import { Collector, freePort, startServerProcess, types, until } from '../client/helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const FAST = { initialMs: 20, maxMs: 200 }

/** The durable backends a server can run on, as `--backend` values over fresh storage. */
const backends: readonly (readonly [name: string, spec: () => string, skip: string | false])[] = [
  ['sqlite', () => `sqlite:${join(dir, `crash-${Date.now()}.db`)}`, false],
  ['postgres', () => `${POSTGRES_URL}?schema=ds_crash_${process.pid}_${Date.now()}`, postgresSkip],
]

for (const [name, spec, skip] of backends) {
  describe(`${name} backend: crash safety (real processes)`, { skip }, () => {
    crashSafety(spec)
  })
}

after(async () => {
  if (backends[1]?.[2] !== false) return
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  const { rows } = await client.query<{ nspname: string }>(
    `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`,
    [`ds_crash_${process.pid}_%`],
  )
  for (const { nspname } of rows) await client.query(`DROP SCHEMA "${nspname}" CASCADE`)
  await client.end()
})

function crashSafety(spec: () => string): void {
  it('keeps every acknowledged write, and no transaction half-applied, after SIGKILL', async () => {
    const port = await freePort()
    const backend = spec()
    const server = await startServerProcess(port, backend)
    const client = await connect(server.url, { name: 'writer', ttl: 5_000, backoff: FAST })
    const writer = client.session
    const acked: string[] = []
    const pairs: number[] = []
    // A random moment within the first few hundred acknowledged writes.
    const killAfter = 200 + Math.floor(Math.random() * 600)
    let stop = false
    const loops = Array.from({ length: 8 }, async (_, lane) => {
      for (let i = 0; !stop; i++) {
        const n = lane * 1_000_000 + i
        try {
          if (i % 5 === 0) {
            await writer.transact({
              then: [
                { op: 'assert', kind: 'pair', id: `${n}-a`, data: n, owner: null },
                { op: 'assert', kind: 'pair', id: `${n}-b`, data: n, owner: null },
              ],
            })
            pairs.push(n)
          } else {
            await writer.assert('acked', String(n), { n }, { owner: null })
            acked.push(String(n))
          }
        } catch {
          return // the server died under this write: its outcome is unknown
        }
        if (acked.length >= killAfter) stop = true
      }
    })
    await until(async () => acked.length >= killAfter, 20_000, 'writes acknowledged')
    await server.kill('SIGKILL')
    stop = true
    await client.close()
    await Promise.allSettled(loops)

    const restarted = await startServerProcess(port, backend)
    const reader = await connect(restarted.url, { name: 'reader' })
    try {
      const ids = new Set<string>()
      let page = await reader.list('acked', { limit: 5_000 })
      for (;;) {
        for (const r of page.items) ids.add(r.id)
        if (page.continue === undefined) break
        page = await reader.list('acked', { limit: 5_000, continue: page.continue })
      }
      const lost = acked.filter((id) => !ids.has(id))
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes lost of ${acked.length}`)
      const stored = (await reader.list('pair')).items.map((r) => r.id)
      const halves = new Map<string, number>()
      for (const id of stored) {
        const n = id.slice(0, -2)
        halves.set(n, (halves.get(n) ?? 0) + 1)
      }
      for (const [n, count] of halves) assert.equal(count, 2, `transaction ${n} half-applied`)
      for (const n of pairs) assert.equal(halves.get(String(n)), 2, `acked transaction ${n} lost`)
    } finally {
      await reader.close()
      await restarted.kill('SIGTERM')
    }
  })

  it('resumes a session across a graceful restart: same pid, records kept', async () => {
    const port = await freePort()
    const backend = spec()
    const server = await startServerProcess(port, backend)
    const client = await connect(server.url, { name: 'keeper', ttl: 10_000, backoff: FAST })
    const status = new Collector<ClientStatus>(client.status())
    const worker = client.process('worker')
    await worker.assert('route', 'kept', { path: '/kept' })
    const pid = worker.id
    await server.kill('SIGTERM')
    const restarted = await startServerProcess(port, backend)
    try {
      await status.until((s) => types(s).includes('reconnected'), 15_000, 'reconnected')
      assert.deepEqual(types(status.items), ['disconnected', 'reconnected'])
      assert.equal(worker.id, pid, 'the session survived, so the pid did not change')
      const record = await client.get('route', 'kept')
      assert.equal(record?.owner, pid)
      // And it is still the owner: it can write its record.
      await worker.assert('route', 'kept', { path: '/kept', v: 2 })
    } finally {
      await client.close()
      await restarted.kill('SIGTERM')
    }
  })
}
