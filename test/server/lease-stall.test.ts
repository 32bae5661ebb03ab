// Storage that stalls for longer than the durable timeout while a session's lease runs out: the
// exit is applied in memory at once, its durable write times out (`Unavailable`), and nothing
// may reject unhandled (Node ends the process on that). Once storage is back, the runtime's
// retry makes the exit durable: the session's records and its session row are gone on disk.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend } from '../../src/backends/index.js'
import { openDataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import { sleep } from '../client/helpers.js'
import { SessionStore } from '../../src/server/session-store.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-lease-stall-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** A backend whose writes wait while `stalled` (a disk or network that hangs, then recovers). */
function stallable(inner: Backend): Backend & { stall(): void; resume(): void } {
  let gate: Promise<void> | undefined
  let open: () => void = () => {}
  return {
    name: inner.name,
    capabilities: inner.capabilities,
    open: () => inner.open(),
    async write(batch) {
      while (gate !== undefined) await gate
      return inner.write(batch)
    },
    close: () => inner.close(),
    stall() {
      gate ??= new Promise((resolve) => (open = resolve))
    },
    resume() {
      gate = undefined
      open()
    },
  }
}

describe('a lease that expires while storage stalls', () => {
  it(
    'does not end the process; the exit is stored once storage is back',
    { timeout: 20_000 },
    async () => {
      const unhandled: unknown[] = []
      const detector = (reason: unknown): void => {
        unhandled.push(reason)
      }
      process.on('unhandledRejection', detector)
      const warnings: string[] = []
      const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) })
      const file = join(dir, 'stall.db')
      const backend = stallable(sqliteBackend({ path: file }))
      try {
        const ds = await openDataspace({ backend, durableTimeoutMs: 150, log: { warn: () => {} } })
        const server = await createServer({ ds, port: 0, logger })
        const post = async (path: string, body: unknown, session?: string): Promise<Response> =>
          fetch(server.url + path, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              ...(session === undefined ? {} : { 'dataspace-session': session }),
            },
            body: JSON.stringify(body),
          })
        const opened = (await (
          await post('/v1/sessions', { name: 'leaser', ttl: 200 })
        ).json()) as {
          session: string
          pid: string
        }
        const put = await fetch(`${server.url}/v1/records/lease.item/a`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'dataspace-session': opened.session },
          body: JSON.stringify({ data: { n: 1 } }),
        })
        assert.equal(put.status, 200, await put.text())

        backend.stall()
        // The lease (200 ms) runs out, the exit's durable wait times out (150 ms), and then some.
        await sleep(800)
        assert.deepEqual(unhandled, [], 'no rejection may go unhandled')
        assert.equal(server.stats.sessions, 0)
        // Applied in memory at once (the synchronous read shows applied state; `get` is released
        // only once what it shows is durable, so it would wait for storage, as it must).
        assert.deepEqual(ds.query('lease.item', { id: 'a' }), [], 'retracted in memory at once')
        assert.ok(
          warnings.some((line) => line.includes(opened.pid) && line.includes('not yet durable')),
          `the failed exit is reported: ${warnings.join('')}`,
        )

        backend.resume()
        // Closing flushes: it resolves once the retried batch (the exit) is written.
        await server.close()
        await ds.close()
        assert.deepEqual(unhandled, [])

        // What is on disk: the record is retracted and the session is not kept for a resume.
        const again = await openDataspace({ backend: sqliteBackend({ path: file }) })
        assert.equal(await again.get('lease.item', 'a'), undefined)
        assert.deepEqual(new SessionStore(again).restoredSessions, [])
        await again.close()
      } finally {
        backend.resume()
        process.off('unhandledRejection', detector)
      }
    },
  )
})
