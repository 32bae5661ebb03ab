// Sessions a client may hold (issue 10 item 8): per token with auth, per client address
// without, and in total; a slot frees when its session ends or expires; a failed resume does not
// renew anyone's lease.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CLOSE_CODES } from '../../src/protocol/index.js'
import { ADMIN, AUTH, bearer, READER } from './auth-fixtures.js'
import { limitHits, start, until } from './helpers.js'
import type { Harness } from './helpers.js'
import { RawWs } from './ws-helpers.js'

async function open(h: Harness, headers: Record<string, string> = {}, ttl?: number) {
  return h.call('POST', '/v1/sessions', {
    body: ttl === undefined ? { name: 'c' } : { name: 'c', ttl },
    headers,
  })
}

describe('session caps', () => {
  it('caps sessions per client address without auth (413 TooLarge), on HTTP and WebSocket', async () => {
    const h = await start({ limits: { maxSessionsPerAddress: 3 } })
    const sockets: RawWs[] = []
    try {
      const first = await open(h)
      assert.equal(first.status, 201)
      assert.equal((await open(h)).status, 201)
      const ws = new RawWs(h.url)
      sockets.push(ws)
      assert.equal((await ws.hello()).type, 'welcome')
      const refused = await open(h)
      assert.equal(refused.status, 413, JSON.stringify(refused.body))
      assert.equal(refused.body.error.code, 'TooLarge')
      assert.match(refused.body.error.message, /limits\.maxSessionsPerAddress \(3\)/)
      assert.equal(
        (refused.body.error as unknown as { limit: string }).limit,
        'maxSessionsPerAddress',
      )
      const over = new RawWs(h.url)
      sockets.push(over)
      const answer = await over.hello()
      assert.equal(answer.error?.code, 'TooLarge', JSON.stringify(answer))
      assert.equal(await over.closedWithin(), CLOSE_CODES.badHello)
      assert.equal(h.server.stats.sessions, 3)
      assert.equal(await limitHits(h.url, 'maxSessionsPerAddress'), 2)
      // Ending a session frees its slot.
      const session = (first.body as unknown as { session: string }).session
      assert.equal((await h.call('DELETE', `/v1/sessions/${session}`)).status, 204)
      assert.equal((await open(h)).status, 201)
      assert.equal((await open(h)).status, 413)
    } finally {
      for (const socket of sockets) socket.close()
      await h.close()
    }
  })

  it('frees a slot when a session expires', async () => {
    const h = await start({ limits: { maxSessionsPerAddress: 1 } })
    try {
      assert.equal((await open(h, {}, 150)).status, 201)
      assert.equal((await open(h)).status, 413)
      await until(() => h.server.stats.sessions === 0, 2_000, 'expiry')
      assert.equal((await open(h)).status, 201)
    } finally {
      await h.close()
    }
  })

  it('caps sessions per token with auth, whatever the address', async () => {
    const h = await start({
      auth: AUTH,
      limits: { maxSessionsPerToken: 2, maxSessionsPerAddress: 1 },
    })
    try {
      assert.equal((await open(h, bearer(READER))).status, 201)
      assert.equal((await open(h, bearer(READER))).status, 201)
      const refused = await open(h, bearer(READER))
      assert.equal(refused.status, 413)
      assert.match(refused.body.error.message, /token reader .*limits\.maxSessionsPerToken \(2\)/)
      // Another token has its own count.
      assert.equal((await open(h, bearer(ADMIN))).status, 201)
      assert.equal(await limitHits(h.url, 'maxSessionsPerToken', bearer(ADMIN)), 1)
    } finally {
      await h.close()
    }
  })

  it('caps sessions in total', async () => {
    const h = await start({ limits: { maxSessions: 2 } })
    try {
      assert.equal((await open(h)).status, 201)
      assert.equal((await open(h)).status, 201)
      const refused = await open(h)
      assert.equal(refused.status, 413)
      assert.match(refused.body.error.message, /limits\.maxSessions \(2\)/)
      assert.equal(await limitHits(h.url, 'maxSessions'), 1)
    } finally {
      await h.close()
    }
  })

  it('does not renew a lease on a resume with a wrong resume token', async () => {
    const h = await start()
    const sockets: RawWs[] = []
    try {
      const owner = new RawWs(h.url)
      sockets.push(owner)
      const welcome = await owner.hello({ ttl: 600 })
      const session = welcome.session
      assert.ok(session !== undefined)
      const victim = h.ds.processById(session.pid)
      assert.ok(victim !== undefined)
      let exitedAt: number | undefined
      // exited never rejects: it resolves with the exit reason.
      victim.exited.then(() => (exitedAt = Date.now()), assert.fail)
      owner.close()
      await owner.closed
      const lastRenewed = Date.now()
      // A thief who knows the session id but not the token keeps trying to resume it.
      const deadline = lastRenewed + 1_300
      while (Date.now() < deadline && exitedAt === undefined) {
        const thief = new RawWs(h.url)
        sockets.push(thief)
        const answer = await thief.hello({ resume: { session: session.id, resumeToken: 'wrong' } })
        assert.equal(answer.type, 'error', JSON.stringify(answer))
        await new Promise((resolve) => setTimeout(resolve, 80))
      }
      assert.ok(exitedAt !== undefined, 'the session outlived its lease: failed resumes renewed it')
      assert.ok(
        exitedAt - lastRenewed < 600 + 300,
        `expired ${exitedAt - lastRenewed} ms after its last renewal`,
      )
    } finally {
      for (const socket of sockets) socket.close()
      await h.close()
    }
  })
})
