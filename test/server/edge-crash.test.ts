// Issue 10 item 1: values a client sends must not be able to end the server process. The
// server runs in a child process, so a crash shows as a dead child (not as this test dying),
// and after each attack it must still answer /livez and take another client's write.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ChildServer } from './child-server.js'
import { startChild } from './child-server.js'
import { RawWs } from './ws-helpers.js'

const A_TOKEN = 'a-writer-token-0123456789'
const OTHER_TOKEN = 'other-token-0123456789ab'
const AUTH = {
  tokens: [
    { token: A_TOKEN, name: 'a-writer', rights: [{ kinds: 'a.*', rights: ['read', 'write'] }] },
    { token: OTHER_TOKEN, name: 'other', rights: [{ kinds: '*', rights: ['admin'] }] },
  ],
} as const

/** A value nested `depth` arrays deep, as JSON text (building it as an object would be the same). */
const nestedJson = (depth: number): string => `${'['.repeat(depth)}0${']'.repeat(depth)}`

let bystanders = 0

/** The process lives, /livez answers, and a fresh client (its own session) can write. */
async function assertServing(server: ChildServer, token?: string): Promise<void> {
  assert.ok(
    await server.alive(),
    `the server died (exit ${server.exitCode()}):\n${server.stderr()}`,
  )
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  }
  const opened = await fetch(`${server.url}/v1/sessions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'bystander' }),
  })
  assert.equal(opened.status, 201)
  const { session } = (await opened.json()) as { session: string }
  const put = await fetch(`${server.url}/v1/records/a.bystander/${++bystanders}`, {
    method: 'PUT',
    headers: { ...headers, 'dataspace-session': session },
    body: JSON.stringify({ data: { ok: true } }),
  })
  assert.equal(put.status, 200, await put.text())
}

describe('a client cannot end the server process (child process)', () => {
  let server: ChildServer
  const sockets: RawWs[] = []
  const raw = (headers: Record<string, string> = {}): RawWs => {
    const socket = new RawWs(server.url, headers)
    sockets.push(socket)
    return socket
  }

  before(async () => {
    server = await startChild({ limits: { maxFrameBytes: 4 * 1024 * 1024 } })
  })
  after(async () => {
    for (const socket of sockets) socket.close()
    await server.close()
  })

  it('a deeply nested send message over WebSocket fails that call', async () => {
    const socket = raw()
    const welcome = await socket.hello()
    const pid = welcome.session?.pid as string
    // Its own mailbox and a record's watchers: both would carry the message back out.
    assert.equal((await socket.call(1, 'messages', { pid })).type, 'result')
    assert.equal((await socket.call(2, 'watch', { kind: 'a.x' })).type, 'result')
    const message = nestedJson(20_000)
    socket.send(
      `[{"type":"call","id":3,"op":"send","args":{"pid":"${pid}","target":"${pid}","message":${message}}},` +
        `{"type":"call","id":4,"op":"send","args":{"pid":"${pid}","target":{"kind":"a.x","id":"1"},"message":${message}}}]`,
    )
    for (const id of [3, 4]) {
      const answer = await socket.next((m) => m.id === id && m.type !== 'events', 5_000)
      assert.equal(answer.type, 'error')
      assert.equal(answer.error?.code, 'InvalidArgument')
      assert.match(answer.error?.message ?? '', /64/)
    }
    await assertServing(server)
  })

  it('~600 pipelined lists over 1,000 × 1 KB records in one frame', async () => {
    const writer = raw()
    const pid = (await writer.hello()).session?.pid as string
    const pad = 'x'.repeat(1024)
    for (let batch = 0; batch < 10; batch++) {
      const then = Array.from({ length: 100 }, (_, i) => ({
        op: 'assert',
        kind: 'a.big',
        id: `r${batch * 100 + i}`,
        data: { pad },
      }))
      const answer = await writer.call(batch, 'transact', { pid, request: { then } })
      assert.equal(answer.type, 'result', JSON.stringify(answer.error))
    }
    const reader = raw()
    await reader.hello()
    reader.send(
      Array.from({ length: 600 }, (_, i) => ({
        type: 'call',
        id: i,
        op: 'list',
        args: { kind: 'a.big' },
      })),
    )
    // 600 MB of answers is more than one connection may hold unsent (wsMaxBufferBytes, 8 MiB):
    // the connection is closed as a slow consumer (4008) after the answers that fit.
    assert.equal(await reader.closedWithin(30_000), 4008)
    const answered = reader.received.filter((m) => m.type === 'result').length
    assert.ok(answered > 0 && answered < 600, `${answered} answers`)
    await assertServing(server)
  })
})

describe('a client cannot end the server process over HTTP, with auth (child process)', () => {
  let server: ChildServer
  let watcher: RawWs | undefined

  before(async () => {
    server = await startChild({ auth: AUTH })
  })
  after(async () => {
    watcher?.close()
    await server.close()
  })

  it('POST /v1/send with a nested message from a token that may only write a.*', async () => {
    // Someone watches the target record, so the message would travel on to them.
    watcher = new RawWs(server.url, { authorization: `Bearer ${OTHER_TOKEN}` })
    await watcher.hello()
    assert.equal((await watcher.call(1, 'watch', { kind: 'a.x' })).type, 'result')
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${A_TOKEN}` }
    const opened = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'attacker' }),
    })
    const { session } = (await opened.json()) as { session: string }
    const res = await fetch(`${server.url}/v1/send`, {
      method: 'POST',
      headers: { ...headers, 'dataspace-session': session },
      body: `{"target":{"kind":"a.x","id":"1"},"message":${nestedJson(20_000)}}`,
    })
    const body = (await res.json()) as { error?: { code: string } }
    assert.equal(res.status, 400, JSON.stringify(body))
    assert.equal(body.error?.code, 'InvalidArgument')
    await assertServing(server, A_TOKEN)
  })
})
