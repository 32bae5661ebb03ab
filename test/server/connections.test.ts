// Connections a client can hold (issue 10 item 7): a WebSocket that never says hello is closed,
// connections are capped per address and in total (probes still answer), and a slowloris is cut
// at headersTimeoutMs.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { CLOSE_CODES } from '../../src/protocol/index.js'
import { limitHits, start } from './helpers.js'
import { RawWs } from './ws-helpers.js'

/** A TCP connection to the server that has sent nothing yet. */
async function tcp(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  return socket
}

/** Everything the server writes on `socket` until it closes (or `ms` pass). */
function readAll(socket: Socket, ms = 3_000): Promise<{ text: string; closedAfter: number }> {
  const started = Date.now()
  return new Promise((resolve) => {
    let text = ''
    const done = (): void => {
      clearTimeout(timer)
      resolve({ text, closedAfter: Date.now() - started })
    }
    const timer = setTimeout(done, ms)
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()))
    socket.once('close', done)
  })
}

/** One `GET path` on a fresh connection, read to its close. */
async function rawGet(url: string, path: string): Promise<string> {
  const socket = await tcp(url)
  const { host } = new URL(url)
  socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
  const { text } = await readAll(socket)
  socket.destroy()
  return text
}

describe('connection limits and timeouts', () => {
  it('closes a WebSocket that never says hello within wsHelloTimeoutMs (4000)', async () => {
    const h = await start({ limits: { wsHelloTimeoutMs: 200 } })
    const ws = new RawWs(h.url)
    try {
      await ws.opened
      const code = await ws.closedWithin(1_500)
      assert.equal(code, CLOSE_CODES.badHello)
      assert.match(ws.closeReason, /no hello within limits\.wsHelloTimeoutMs \(200 ms\)/)
      assert.equal(h.server.stats.wsConnections, 0)
      assert.equal(await limitHits(h.url, 'wsHelloTimeoutMs'), 1)
      // A client that says hello in time is not cut.
      const ok = new RawWs(h.url)
      assert.equal((await ok.hello()).type, 'welcome')
      await new Promise((resolve) => setTimeout(resolve, 400))
      assert.ok(ok.isOpen)
      ok.close()
    } finally {
      ws.close()
      await h.close()
    }
  })

  for (const limit of ['maxConnectionsPerAddress', 'maxConnections'] as const) {
    it(`refuses a connection past ${limit} with 503 and still answers /livez`, async () => {
      const h = await start({ limits: { [limit]: 3 } })
      const held: Socket[] = []
      try {
        for (let i = 0; i < 3; i++) held.push(await tcp(h.url))
        const refused = await rawGet(h.url, '/v1/records/x')
        assert.match(refused, /^HTTP\/1\.1 503 /)
        assert.match(refused, /"code":"Unavailable"/)
        assert.match(refused, new RegExp(`limits\\.${limit} \\(3\\)`))
        assert.match(await rawGet(h.url, '/livez'), /^HTTP\/1\.1 200 [^]*"live":true/)
        const ws = new RawWs(h.url)
        await ws.closedWithin()
        assert.equal(ws.refusedStatus, 503)
        assert.ok((await limitHits(h.url, limit)) >= 3)
        // A held connection is served, and closing one makes room.
        held[0]?.destroy()
        await new Promise((resolve) => setTimeout(resolve, 50))
        assert.match(await rawGet(h.url, '/v1/records/x'), /^HTTP\/1\.1 200 /)
      } finally {
        for (const socket of held) socket.destroy()
        await h.close()
      }
    })
  }

  it('cuts a slowloris (headers one byte at a time) at headersTimeoutMs', async () => {
    const h = await start({ limits: { headersTimeoutMs: 300 } })
    const socket = await tcp(h.url)
    const drip = setInterval(() => socket.write('x'), 50)
    try {
      socket.write('GET /livez HTTP/1.1\r\nx-slow: ')
      const { text, closedAfter } = await readAll(socket, 5_000)
      assert.ok(closedAfter < 1_500, `still open after ${closedAfter} ms`)
      assert.match(text, /^HTTP\/1\.1 408 /)
      assert.equal(await limitHits(h.url, 'requestTimeoutMs'), 1)
    } finally {
      clearInterval(drip)
      socket.destroy()
      await h.close()
    }
  })

  it('cuts a body that trickles in at requestTimeoutMs', async () => {
    const h = await start({ limits: { headersTimeoutMs: 300, requestTimeoutMs: 600 } })
    const socket = await tcp(h.url)
    const drip = setInterval(() => socket.write('1'), 50)
    try {
      const { host } = new URL(h.url)
      socket.write(
        `POST /v1/sessions HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\n` +
          `content-length: 100000\r\n\r\n`,
      )
      const { closedAfter } = await readAll(socket, 5_000)
      assert.ok(closedAfter < 2_000, `still open after ${closedAfter} ms`)
    } finally {
      clearInterval(drip)
      socket.destroy()
      await h.close()
    }
  })
})
