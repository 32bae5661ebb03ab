// The auth matrix over the WebSocket endpoint: a token in hello.token or an Authorization header
// at the upgrade; rights per op as the HTTP routes check them; sessions bound to their token.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { connect } from '../../src/client/index.js'
import { CLOSE_CODES } from '../../src/protocol/index.js'
import { ADMIN, API_WRITER, AUTH, bearer, KV_WRITER, READER } from './auth-fixtures.js'
import { start } from './helpers.js'
import type { Harness } from './helpers.js'
import { RawWs } from './ws-helpers.js'

describe('auth over WebSocket', () => {
  let h: Harness
  const sockets: RawWs[] = []
  const ws = (headers: Record<string, string> = {}): RawWs => {
    const socket = new RawWs(h.url, headers)
    sockets.push(socket)
    return socket
  }

  before(async () => {
    h = await start({ auth: AUTH })
  })
  after(async () => {
    for (const socket of sockets) socket.close()
    await h.close()
  })

  it('answers a hello without a token, or with a wrong one, with Unauthorized and 4001', async () => {
    for (const token of [undefined, 'x', `${ADMIN.slice(0, -1)}x`, `${ADMIN}${ADMIN}`, 42]) {
      const socket = ws()
      const answer = await socket.hello(token === undefined ? {} : { token })
      assert.equal(answer.type, 'error', String(token))
      assert.equal(answer.error?.code, 'Unauthorized')
      assert.equal(await socket.closedWithin(), CLOSE_CODES.unauthorized)
      assert.ok(!socket.received.some((m) => m.type === 'welcome'))
    }
    assert.equal(h.server.stats.sessions, 0)
  })

  it('refuses an upgrade with a bad Authorization header (401), before any hello', async () => {
    for (const authorization of ['Bearer nope', `Basic ${ADMIN}`, 'Bearer ']) {
      const socket = ws({ authorization })
      await socket.closedWithin()
      assert.equal(socket.refusedStatus, 401, authorization)
    }
  })

  it('accepts a token in hello.token or in the Authorization header', async () => {
    const viaHello = ws()
    const a = await viaHello.hello({ token: READER })
    assert.equal(a.type, 'welcome')
    const viaHeader = ws(bearer(READER))
    const b = await viaHeader.hello()
    assert.equal(b.type, 'welcome')
    for (const socket of [viaHello, viaHeader]) {
      const list = await socket.call(1, 'list', { kind: 'api.route' })
      assert.equal(list.type, 'result')
    }
  })

  it('answers Forbidden per op for a token without the right, and keeps the connection', async () => {
    const reader = ws()
    const welcome = await reader.hello({ token: READER })
    const pid = welcome.session?.pid
    const forbidden: [string, Record<string, unknown>][] = [
      ['assert', { pid, kind: 'api.route', id: 'a', data: {} }],
      ['retract', { pid, kind: 'api.route', id: 'a' }],
      ['transact', { pid, request: { then: [{ op: 'assert', kind: 'x', id: 1, data: {} }] } }],
      ['groups.join', { scope: 'default', group: 'g', pids: pid }],
      ['names.register', { pid, name: 'svc' }],
      ['kv.put', { bucket: 'config', key: 'a', value: 1 }],
      ['kv.delete', { bucket: 'config', key: 'a' }],
      ['defineKind', { kind: 'api.route', options: {} }],
      ['send', { pid, target: { kind: 'api.route', id: 'a' }, message: 1 }],
    ]
    let id = 10
    for (const [op, args] of forbidden) {
      const answer = await reader.call(++id, op, args)
      assert.equal(answer.type, 'error', op)
      assert.equal(answer.error?.code, 'Forbidden', `${op}: ${JSON.stringify(answer)}`)
    }
    // Reads are allowed, and the connection is still up.
    for (const [op, args] of [
      ['get', { kind: 'api.route', id: 'a' }],
      ['names.list', {}],
      ['groups.members', { scope: 'default', group: 'g' }],
      ['kv.get', { bucket: 'config', key: 'a' }],
    ] as const) {
      assert.equal((await reader.call(++id, op, args)).type, 'result', op)
    }
    assert.ok(reader.isOpen)

    // A write token is confined to its kinds, streams included.
    const writer = ws(bearer(API_WRITER))
    const w = await writer.hello()
    const wpid = w.session?.pid
    assert.equal(
      (await writer.call(1, 'assert', { pid: wpid, kind: 'api.r', id: 1, data: {} })).type,
      'result',
    )
    const outside = await writer.call(2, 'assert', { pid: wpid, kind: 'db.t', id: 1, data: {} })
    assert.equal(outside.error?.code, 'Forbidden')
    const mixed = await writer.call(3, 'transact', {
      pid: wpid,
      request: {
        then: [
          { op: 'assert', kind: 'api.r', id: 2, data: {} },
          { op: 'assert', kind: 'db.t', id: 2, data: {} },
        ],
      },
    })
    assert.equal(mixed.error?.code, 'Forbidden')
    assert.equal(await h.ds.get('api.r', 2), undefined)
    assert.equal((await writer.call(4, 'watch', { kind: 'db.t' })).error?.code, 'Forbidden')
    assert.equal((await writer.call(5, 'watch', { kind: 'api.r' })).type, 'result')
    assert.equal((await writer.call(6, 'names.watch', {})).error?.code, 'Forbidden')
    assert.equal(
      (await writer.call(7, 'groups.join', { scope: 's', group: 'g', pids: wpid })).type,
      'result',
    )
    assert.equal(
      (await writer.call(8, 'groups.members', { scope: 's', group: 'g' })).error?.code,
      'Forbidden',
    )
    const kv = ws(bearer(KV_WRITER))
    await kv.hello()
    assert.equal(
      (await kv.call(1, 'kv.put', { bucket: 'config', key: 'a', value: 1 })).type,
      'result',
    )
    assert.equal(
      (await kv.call(2, 'kv.put', { bucket: 'secrets', key: 'a', value: 1 })).error?.code,
      'Forbidden',
    )
    assert.equal((await kv.call(3, 'kv.watch', { bucket: 'secrets' })).error?.code, 'Forbidden')
  })

  it('refuses to resume a session with another token, and keeps it for its own', async () => {
    const owner = ws()
    const welcome = await owner.hello({ token: API_WRITER, ttl: 5_000 })
    const session = welcome.session
    assert.ok(session !== undefined)
    assert.equal(
      (await owner.call(1, 'assert', { pid: session.pid, kind: 'api.kept', id: 1, data: {} })).type,
      'result',
    )
    owner.close()
    await owner.closed
    const resume = { session: session.id, resumeToken: session.resumeToken }

    for (const other of [{ token: ADMIN }, { token: READER }]) {
      const thief = ws()
      const answer = await thief.hello({ ...other, resume })
      assert.equal(answer.type, 'error')
      assert.equal(answer.error?.code, 'Forbidden')
      const code = await thief.closedWithin()
      assert.ok(code === CLOSE_CODES.badHello || code === CLOSE_CODES.unauthorized, String(code))
    }
    const viaHeader = ws(bearer(READER))
    assert.equal((await viaHeader.hello({ resume })).error?.code, 'Forbidden')
    await viaHeader.closedWithin()

    // The owner's token resumes it, with what it owned.
    const back = ws(bearer(API_WRITER))
    const again = await back.hello({ resume })
    assert.equal(again.type, 'welcome')
    assert.equal(again.resumed, true)
    assert.equal(again.session?.id, session.id)
    assert.equal((await h.ds.get('api.kept', 1))?.owner, session.pid)
  })

  it('lets the client connect with a token and fails fast with a bad one', async () => {
    await assert.rejects(connect(h.url, { token: 'wrong', connectTimeoutMs: 2_000 }), {
      code: 'Unauthorized',
    })
    const client = await connect(h.url, { token: API_WRITER, name: 'c' })
    try {
      await client.session.assert('api.client', 'x', {})
      await assert.rejects(client.session.assert('db.client', 'x', {}), { code: 'Forbidden' })
      assert.equal((await client.get('api.client', 'x'))?.owner, client.session.id)
    } finally {
      await client.close()
    }
  })
})
