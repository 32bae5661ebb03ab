import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createDataspace } from '../../src/index.js'
import { STATUS_BY_CODE, toWireError } from '../../src/server/index.js'
import { SessionTable } from '../../src/server/session-table.js'
import { openSse, start, until } from './helpers.js'
import { DataspaceError, NotOwner } from '../../src/index.js'

describe('sessions', () => {
  it('opens a session: a process with a lease and unguessable ids', async () => {
    const h = await start()
    try {
      const a = await h.session('router', 5000)
      assert.match(a.session, /^[0-9a-f-]{36}$/)
      assert.match(a.pid, /^local\/router#\d+$/)
      assert.equal(a.ttl, 5000)
      assert.notEqual(a.resumeToken, a.session)
      assert.equal(h.server.stats.sessions, 1)
      const bad = await h.call('POST', '/v1/sessions', { body: { name: 'x', ttl: 1 } })
      assert.equal(bad.body.error.code, 'InvalidArgument')
    } finally {
      await h.close()
    }
  })

  it('retracts what a session owned when its lease runs out, and watchers see owner-exit', async () => {
    const h = await start()
    try {
      const { session } = await h.session('short', 300)
      await h.call('PUT', '/v1/records/lease.test/a', { session, body: { data: 1 } })
      await h.call('PUT', '/v1/records/lease.test/b', { session, body: { data: 2 } })
      const watch = await openSse(`${h.url}/v1/watch/lease.test`)
      assert.equal((await watch.next())?.event, 'snapshot')
      const gone = await watch.drain(1500).then((events) => events)
      assert.deepEqual(
        gone.map((e) => [e.event, e.data.reason]),
        [
          ['retracted', 'owner-exit'],
          ['retracted', 'owner-exit'],
        ],
      )
      // Both retractions are one commit: only the last carries the id.
      assert.deepEqual(
        gone.map((e) => e.id),
        [undefined, String(gone[1]?.data.revision)],
      )
      assert.equal((await h.ds.list('lease.test')).items.length, 0)
      const late = await h.call('POST', `/v1/sessions/${session}/heartbeat`)
      assert.equal(late.status, 410)
      assert.equal(late.body.error.code, 'ProcessExited')
      const write = await h.call('PUT', '/v1/records/lease.test/c', { session, body: { data: 3 } })
      assert.equal(write.status, 410)
      watch.close()
    } finally {
      await h.close()
    }
  })

  it('stays alive while heartbeats (or requests carrying it) renew the lease', async () => {
    const h = await start()
    try {
      const { session } = await h.session('beating', 300)
      await h.call('PUT', '/v1/records/beat/a', { session, body: { data: 1 } })
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        const path = i % 2 === 0 ? `/v1/sessions/${session}/heartbeat` : '/v1/records/beat/a'
        const res = await h.call(i % 2 === 0 ? 'POST' : 'GET', path, { session })
        assert.equal(res.status, 200)
      }
      assert.ok(await h.ds.get('beat', 'a'))
      await until(async () => (await h.ds.get('beat', 'a')) === undefined, 2000, 'lease expiry')
    } finally {
      await h.close()
    }
  })

  it('ends at once on DELETE, and close() exits every session', async () => {
    const h = await start()
    try {
      const { session, pid } = await h.session('ending')
      await h.call('PUT', '/v1/records/end/a', { session, body: { data: 1 } })
      const ended = await h.call('DELETE', `/v1/sessions/${session}`)
      assert.equal(ended.status, 204)
      assert.equal(await h.ds.get('end', 'a'), undefined)
      assert.equal(h.ds.processById(pid), undefined)
      assert.equal((await h.call('DELETE', `/v1/sessions/${session}`)).status, 410)

      const other = await h.session('survivor')
      await h.call('PUT', '/v1/records/end/b', { session: other.session, body: { data: 1 } })
      await h.server.close()
      assert.equal(await h.ds.get('end', 'b'), undefined)
      assert.equal(h.server.stats.sessions, 0)
    } finally {
      await h.close()
    }
  })

  it('checks resume tokens in constant time', async () => {
    const ds = createDataspace()
    const table = new SessionTable(ds, 1000, { min: 100, max: 10_000 })
    const session = table.open('resumable', undefined)
    assert.equal(table.resume(session.id, session.resumeToken), session)
    assert.throws(() => table.resume(session.id, 'wrong'), /resume token/)
    await table.closeAll()
    assert.equal(table.size, 0)
    await ds.close()
  })
})

describe('wire errors', () => {
  it('maps every code to a status and hides unknown errors', () => {
    assert.equal(STATUS_BY_CODE.Unauthorized, 401)
    assert.equal(STATUS_BY_CODE.Forbidden, 403)
    assert.equal(STATUS_BY_CODE.NotJoined, 409)
    assert.equal(STATUS_BY_CODE.Unavailable, 503)
    const internal = toWireError(new Error('secret path /etc/x'))
    assert.equal(internal.status, 500)
    assert.deepEqual(internal.body, {
      error: { code: 'Internal', message: 'internal server error' },
    })
    const owner = toWireError(new NotOwner('owned by p', 'p'))
    assert.deepEqual(owner.body, { error: { code: 'NotOwner', message: 'owned by p', owner: 'p' } })
    assert.equal(toWireError(new DataspaceError('Forbidden', 'no')).status, 403)
  })
})
