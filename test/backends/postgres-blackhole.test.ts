// A PostgreSQL address that accepts connections and never answers (a firewall that drops
// packets, a host gone mid-handshake): opening the backend must fail, not hang forever, so
// `dataspace serve` exits with the reason instead of waiting silently. No database is needed.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'

/** A TCP server on 127.0.0.1 that accepts connections and never sends a byte. */
async function withBlackhole(run: (url: string) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>()
  const blackhole = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
  })
  blackhole.listen(0, '127.0.0.1')
  await once(blackhole, 'listening')
  const { port } = blackhole.address() as AddressInfo
  try {
    await run(`postgres://postgres@127.0.0.1:${port}/test`)
  } finally {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => blackhole.close(() => resolve()))
  }
}

describe('postgres backend: a database that never answers', () => {
  it(
    'fails to open after the default connect timeout instead of hanging',
    { timeout: 40_000 },
    async () => {
      await withBlackhole(async (url) => {
        const backend = postgresBackend({ url, schema: 'ds_blackhole', onError: () => {} })
        await assert.rejects(backend.open(), /timeout/i)
      })
    },
  )

  it(
    'honours pool.connectionTimeoutMillis on every connection, the lock one too',
    { timeout: 20_000 },
    async () => {
      await withBlackhole(async (url) => {
        const backend = postgresBackend({
          url,
          schema: 'ds_blackhole',
          pool: { connectionTimeoutMillis: 500 },
          onError: () => {},
        })
        const started = Date.now()
        await assert.rejects(backend.open(), /timeout/i)
        // Well under the default: the option reached the connection that was waiting.
        assert.ok(Date.now() - started < 8_000, `open took ${Date.now() - started} ms`)
      })
    },
  )
})
