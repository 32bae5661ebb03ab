// Protocol fuzz against one server: random and mutated frames, oversized frames and floods.
// Properties: the server never crashes (a healthy client keeps its session and records and
// keeps working after every case), and every bad frame after hello gets an `error` message.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { connect } from '../../src/client/index.js'
import type { ClientStatus, DataspaceClient } from '../../src/client/index.js'
import { CLOSE_CODES } from '../../src/protocol/index.js'
import { OPERATION_NAMES } from '../../src/protocol/index.js'
import { startChild } from './child-server.js'
import type { ChildServer } from './child-server.js'
import { args as fuzzArgs, frameText } from './fuzz-values.js'
import { start } from './helpers.js'
import type { Harness } from './helpers.js'
import { RawWs } from './ws-helpers.js'
import type { Received } from './ws-helpers.js'

const MAX_FRAME = 16 * 1024
const SENTINEL = 2 ** 52

type Frame =
  | { readonly kind: 'json'; readonly value: unknown }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'binary'; readonly bytes: Uint8Array }

const junk = fc.jsonValue({ maxDepth: 3 })
const id = fc.oneof(
  fc.nat(),
  fc.constantFrom(2 ** 53, 2 ** 60, -1, 1.5, 1e308, '7', null, true),
  junk,
)
const op = fc.oneof(fc.constantFrom(...OPERATION_NAMES), fc.string({ maxLength: 12 }))
const args = fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), junk, { maxKeys: 4 }), junk)
const call = fc.record({ type: fc.constant('call'), id, op, args }, { requiredKeys: ['type'] })
const cancel = fc.record({ type: fc.constant('cancel'), id }, { requiredKeys: ['type'] })
const hello = fc.record(
  { type: fc.constant('hello'), v: fc.oneof(fc.constant(1), junk), id, name: junk },
  { requiredKeys: ['type'] },
)
const other = fc.record({ type: fc.oneof(fc.string({ maxLength: 8 }), junk), id })
const message = fc.oneof(call, call, cancel, hello, other, junk)
const badJson = fc
  .string({ maxLength: 40 })
  .map((s) => `{${s}`)
  .filter((s) => !parses(s))
const frame: fc.Arbitrary<Frame> = fc.oneof(
  message.map((value) => ({ kind: 'json' as const, value })),
  fc.array(message, { maxLength: 8 }).map((value) => ({ kind: 'json' as const, value })),
  badJson.map((text) => ({ kind: 'text' as const, text })),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'binary' as const, bytes })),
)

function parses(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

const validId = (value: unknown): boolean =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** How many `result`/`error` answers the server owes for `f`: one per call, one per bad message. */
function owed(f: Frame): number {
  if (f.kind !== 'json') return 1
  const messages = Array.isArray(f.value) ? f.value : [f.value]
  let n = 0
  for (const m of messages) {
    const type = (m as { type?: unknown } | null)?.type
    const mid = (m as { id?: unknown } | null)?.id
    if (type === 'cancel' && validId(mid)) continue // nothing to answer
    n++ // a call's result or error, or the error for a bad message
  }
  return n
}

describe('WebSocket protocol fuzz', () => {
  let h: Harness
  let healthy: DataspaceClient
  let healthySession: string
  let statuses: ClientStatus[]
  let statusLoop: Promise<void>
  const sockets = new Set<RawWs>()

  const raw = (): RawWs => {
    const socket = new RawWs(h.url)
    sockets.add(socket)
    // `closed` resolves with the close code and never rejects.
    socket.closed.then(
      () => sockets.delete(socket),
      () => sockets.delete(socket),
    )
    return socket
  }

  /** The healthy client still has its session and its record, and can write. */
  async function checkHealthy(): Promise<void> {
    assert.equal(healthy.session.id, healthySession)
    assert.equal((await healthy.get('fuzz.healthy', 'h'))?.owner, healthySession)
    const record = await healthy.session.assert('fuzz.healthy', 'tick', { at: Date.now() })
    assert.equal(record.owner, healthySession)
    assert.deepEqual(statuses, [])
  }

  before(async () => {
    h = await start({ limits: { maxFrameBytes: MAX_FRAME } })
    healthy = await connect(h.url, { name: 'healthy', ttl: 10_000 })
    healthySession = healthy.session.id
    await healthy.session.assert('fuzz.healthy', 'h', { ok: true })
    statuses = []
    statusLoop = (async () => {
      for await (const s of healthy.status()) statuses.push(s)
    })()
  })
  after(async () => {
    for (const socket of sockets) socket.close()
    await healthy.close()
    await statusLoop // the status stream ends with the client
    await h.close()
  })

  it('answers every bad frame after hello with an error, and never falls over', async () => {
    let sentinel = SENTINEL
    await fc.assert(
      fc.asyncProperty(frame, async (f) => {
        const socket = raw()
        try {
          const welcome = await socket.hello({ ttl: 1_000 })
          assert.equal(welcome.type, 'welcome')
          const before = socket.received.length
          if (f.kind === 'binary') socket.send(Buffer.from(f.bytes), true)
          else socket.send(f.kind === 'text' ? f.text : JSON.stringify(f.value))
          const mark = ++sentinel
          socket.send([{ type: 'call', id: mark, op: 'get', args: { kind: 'fuzz.x', id: 'x' } }])
          const answers = (): Received[] =>
            socket.received
              .slice(before)
              .filter((m) => (m.type === 'result' || m.type === 'error') && m.id !== mark)
          const expected = owed(f)
          await socket.next((m) => m.id === mark, 2_000, 'the sentinel answer')
          const deadline = Date.now() + 1_000
          while (answers().length < expected && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
          assert.equal(answers().length, expected, JSON.stringify(socket.received.slice(before)))
          if (f.kind !== 'json') {
            assert.equal(answers()[0]?.type, 'error')
            assert.equal(answers()[0]?.error?.code, 'InvalidArgument')
          }
          assert.ok(socket.isOpen, `closed ${socket.closeCode}: ${socket.closeReason}`)
        } finally {
          socket.close()
        }
        await checkHealthy()
      }),
      { numRuns: 100, interruptAfterTimeLimit: 10_000 },
    )
  })

  it('closes 4000 on anything but a hello first; bad JSON and binary get an error', async () => {
    await fc.assert(
      fc.asyncProperty(frame, async (f) => {
        const socket = raw()
        try {
          await socket.opened
          if (f.kind === 'binary') socket.send(Buffer.from(f.bytes), true)
          else socket.send(f.kind === 'text' ? f.text : JSON.stringify(f.value))
          const messages = f.kind === 'json' ? (Array.isArray(f.value) ? f.value : [f.value]) : []
          const first = messages[0] as { type?: unknown; v?: unknown } | undefined
          if (f.kind !== 'json') {
            const error = await socket.next((m) => m.type === 'error')
            assert.equal(error.error?.code, 'InvalidArgument')
          } else if (first?.type === 'hello' && first.v === 1) {
            // A valid hello opens a session (the rest of the frame is fuzz after hello).
            await socket.next((m) => m.type === 'welcome' || m.type === 'error')
          } else if (messages.length > 0) {
            const code = await socket.closedWithin()
            assert.ok(code === CLOSE_CODES.badHello, `close ${code}`)
            assert.ok(!socket.received.some((m) => m.type === 'welcome'))
          }
        } finally {
          socket.close()
        }
        await checkHealthy()
      }),
      { numRuns: 60, interruptAfterTimeLimit: 5_000 },
    )
  })

  it('answers a second hello with an error and keeps the session', async () => {
    const socket = raw()
    const welcome = await socket.hello()
    socket.send([{ type: 'hello', v: 1, name: 'again' }])
    const error = await socket.next((m) => m.type === 'error')
    assert.equal(error.error?.code, 'InvalidArgument')
    const pid = welcome.session?.pid
    const ok = await socket.call(1, 'assert', { pid, kind: 'fuzz.h2', id: 1, data: {} })
    assert.equal(ok.type, 'result')
    socket.close()
    await checkHealthy()
  })

  it('closes a connection that sends a frame over limits.maxFrameBytes with 1009', async () => {
    const socket = raw()
    const welcome = await socket.hello()
    const pid = welcome.session?.pid
    // Just under the limit is fine.
    const fits = JSON.stringify({
      type: 'call',
      id: 1,
      op: 'assert',
      args: { pid, kind: 'fuzz.big', id: 'fits', data: 'x'.repeat(MAX_FRAME - 200) },
    })
    assert.ok(fits.length <= MAX_FRAME)
    socket.send(fits)
    assert.equal((await socket.next((m) => m.id === 1)).type, 'result')
    socket.send(JSON.stringify({ type: 'call', id: 2, op: 'get', pad: 'x'.repeat(MAX_FRAME) }))
    assert.equal(await socket.closedWithin(), 1009)
    // Before hello too.
    const early = raw()
    await early.opened
    early.send('x'.repeat(MAX_FRAME + 1))
    assert.equal(await early.closedWithin(), 1009)
    await checkHealthy()
  })

  it('answers every call of a flood, in one frame and in many', async () => {
    const socket = raw()
    const welcome = await socket.hello()
    const pid = welcome.session?.pid
    const calls = Array.from({ length: 100 }, (_, i) => ({
      type: 'call',
      id: i,
      op: i % 2 === 0 ? 'get' : 'assert',
      args: { pid, kind: 'fuzz.flood', id: i, data: { i } },
    }))
    assert.ok(JSON.stringify(calls).length <= MAX_FRAME)
    socket.send(calls)
    for (let f = 0; f < 100; f++) {
      socket.send(
        Array.from({ length: 5 }, (_, j) => ({
          type: 'call',
          id: 1_000 + f * 5 + j,
          op: 'list',
          args: { kind: 'fuzz.flood', options: { limit: 1 } },
        })),
      )
    }
    const answered = (): number =>
      new Set(
        socket.received.filter((m) => m.type === 'result' || m.type === 'error').map((m) => m.id),
      ).size
    const deadline = Date.now() + 5_000
    while (answered() < 600 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.equal(answered(), 600, `closed: ${socket.closeCode}`)
    // Every answer is a result or a clear error (a rate limit, say), never a malformed one.
    for (const m of socket.received) {
      if (m.type === 'error') assert.equal(typeof m.error?.code, 'string')
    }
    assert.ok(socket.isOpen)
    socket.close()
    await checkHealthy()
  })
})

// Issue 10 "Done when": every operation driven with generated arguments (nesting, sizes,
// unicode edge cases, numbers), pipelined in one frame, against a server in a child process.
// After each case the process lives, /livez answers and another client's write succeeds.
describe('WebSocket operations fuzz against a server process', () => {
  let server: ChildServer
  let bystander: { session: string; n: number }
  const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
  console.log(`# ws operations fuzz: FC_SEED=${seed}`)

  before(async () => {
    server = await startChild({ limits: { maxFrameBytes: 4 * 1024 * 1024 } })
    const res = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bystander', ttl: 60_000 }),
    })
    bystander = { session: ((await res.json()) as { session: string }).session, n: 0 }
  })
  after(() => server.close())

  const calls = fc.array(fc.record({ op: fc.constantFrom(...OPERATION_NAMES), args: fuzzArgs }), {
    minLength: 1,
    maxLength: 8,
  })

  it('no generated call of any operation ends, wedges or breaks the server', async () => {
    await fc.assert(
      fc.asyncProperty(calls, async (batch) => {
        const socket = new RawWs(server.url)
        try {
          const welcome = await socket.hello({ ttl: 2_000 })
          const pid = welcome.session?.pid as string
          const frame = batch.map((c, i) => ({ type: 'call', id: i + 1, op: c.op, args: c.args }))
          // A monitor answers when its target exits, which may be never (its own pid): not owed.
          const owed = batch.filter((c) => c.op !== 'monitor').length
          socket.send(frameText(frame, pid))
          const answered = (): number =>
            new Set(
              socket.received
                .filter((m) => m.type === 'result' || m.type === 'error')
                .map((m) => m.id),
            ).size
          const deadline = Date.now() + 5_000
          while (socket.isOpen && answered() < owed && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
          assert.ok(!socket.isOpen || answered() >= owed, `${answered()} of ${owed} calls answered`)
          for (const m of socket.received) {
            if (m.type === 'error') assert.notEqual(m.error?.code, 'Internal', m.error?.message)
          }
        } finally {
          socket.close()
        }
        assert.ok(await server.alive(), `server died:\n${server.stderr()}`)
        const put = await fetch(`${server.url}/v1/records/fz.bystander/${++bystander.n}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'dataspace-session': bystander.session },
          body: JSON.stringify({ data: { n: bystander.n } }),
        })
        assert.equal(put.status, 200, await put.text())
      }),
      { seed, numRuns: 80, interruptAfterTimeLimit: 25_000 },
    )
  })
})
