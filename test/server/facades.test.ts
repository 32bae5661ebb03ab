import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { start } from './helpers.js'

describe('KV over HTTP', () => {
  it('puts, gets, scans with pages, CAS-checks and deletes', async () => {
    const h = await start()
    try {
      const put = await h.call('PUT', '/v1/kv/config/feature/x', { body: { value: { on: true } } })
      assert.equal(put.status, 200)
      assert.deepEqual(
        [put.body.key, put.body.value, put.body.owner],
        ['feature/x', { on: true }, null],
      )
      const got = await h.call('GET', '/v1/kv/config/feature/x')
      assert.equal(got.body.revision, put.body.revision)
      assert.equal((await h.call('GET', '/v1/kv/config/feature/none')).status, 404)

      const stale = await h.call('PUT', '/v1/kv/config/feature/x', {
        body: { value: 1, ifRevision: 0 },
      })
      assert.equal(stale.status, 409)
      assert.equal(stale.body.error.currentRevision, put.body.revision)

      await h.call('PUT', '/v1/kv/config/feature/y', { body: { value: 2 } })
      await h.call('PUT', '/v1/kv/config/other', { body: { value: 3 } })
      const page = await h.call('GET', '/v1/kv/config?prefix=feature/&limit=1')
      assert.deepEqual(
        page.body.entries.map((e: { key: string }) => e.key),
        ['feature/x'],
      )
      const next = await h.call(
        'GET',
        `/v1/kv/config?prefix=feature/&limit=1&continue=${encodeURIComponent(page.body.continue)}`,
      )
      assert.deepEqual(
        next.body.entries.map((e: { key: string }) => e.key),
        ['feature/y'],
      )
      const glob = await h.call('GET', '/v1/kv/config?glob=*th*')
      assert.deepEqual(
        glob.body.entries.map((e: { key: string }) => e.key),
        ['other'],
      )

      const wrongRev = await h.call('DELETE', '/v1/kv/config/other?ifRevision=1')
      assert.equal(wrongRev.body.error.code, 'Conflict')
      assert.deepEqual((await h.call('DELETE', '/v1/kv/config/other')).body, { deleted: true })
      assert.deepEqual((await h.call('DELETE', '/v1/kv/config/other')).body, { deleted: false })
      // GET …/watch without Accept: text/event-stream is the key named "watch".
      await h.call('PUT', '/v1/kv/config/watch', { body: { value: 'plain key' } })
      assert.equal((await h.call('GET', '/v1/kv/config/watch')).body.value, 'plain key')
    } finally {
      await h.close()
    }
  })

  it('binds a key to the session with owner "session": it goes when the session ends', async () => {
    const h = await start()
    try {
      const { session, pid } = await h.session()
      const put = await h.call('PUT', '/v1/kv/locks/job-7', {
        session,
        body: { value: 'mine', owner: 'session' },
      })
      assert.equal(put.body.owner, pid)
      const noSession = await h.call('PUT', '/v1/kv/locks/job-8', {
        body: { value: 1, owner: 'session' },
      })
      assert.equal(noSession.status, 400)
      await h.call('DELETE', `/v1/sessions/${session}`)
      assert.equal((await h.call('GET', '/v1/kv/locks/job-7')).status, 404)
    } finally {
      await h.close()
    }
  })
})

describe('groups over HTTP', () => {
  it('joins the session or listed pids, lists members with multiplicity, leaves', async () => {
    const h = await start()
    try {
      const { session, pid } = await h.session('worker')
      const other = h.ds.process('local-worker')
      assert.deepEqual((await h.call('POST', '/v1/groups/jobs/workers/join', { session })).body, {
        result: 'ok',
      })
      // `pids` names the session's own processes (multiset: two joins need two leaves).
      await h.call('POST', '/v1/groups/jobs/workers/join', { session, body: { pids: [pid, pid] } })
      const members = await h.call('GET', '/v1/groups/jobs/workers')
      assert.deepEqual([...members.body.members].sort(), [pid, pid, pid].sort())
      assert.deepEqual((await h.call('GET', '/v1/groups/default/workers')).body, { members: [] })

      // Another process's pid is Forbidden, with or without a session (it used to be allowed:
      // any client could join or remove any process).
      for (const pids of [[other.id], ['local/ghost#99']]) {
        for (const as of [{ session }, {}]) {
          const foreign = await h.call('POST', '/v1/groups/jobs/workers/join', {
            ...as,
            body: { pids },
          })
          assert.equal(foreign.status, 403, JSON.stringify(foreign.body))
          assert.equal(foreign.body.error.code, 'Forbidden')
        }
      }
      const noSession = await h.call('POST', '/v1/groups/jobs/workers/join')
      assert.match(noSession.body.error.message, /session/)

      for (let i = 0; i < 2; i++) {
        await h.call('POST', '/v1/groups/jobs/workers/leave', { session, body: { pids: [pid] } })
      }
      assert.deepEqual((await h.call('POST', '/v1/groups/jobs/workers/leave', { session })).body, {
        result: 'ok',
      })
      assert.deepEqual((await h.call('POST', '/v1/groups/jobs/workers/leave', { session })).body, {
        result: 'not_joined',
      })
      await other.exit()
      assert.deepEqual((await h.call('GET', '/v1/groups/jobs/workers')).body, { members: [] })
    } finally {
      await h.close()
    }
  })
})

describe('names over HTTP', () => {
  it('registers the session, reports the holder on NameTaken, unregisters, releases on exit', async () => {
    const h = await start()
    try {
      const a = await h.session('a')
      const b = await h.session('b')
      const reg = await h.call('PUT', '/v1/names/leader/eu', {
        session: a.session,
        body: { meta: { zone: 'eu' } },
      })
      assert.equal(typeof reg.body.fence, 'number')
      const where = await h.call('GET', '/v1/names/leader/eu')
      assert.deepEqual(where.body, { pid: a.pid, fence: reg.body.fence, meta: { zone: 'eu' } })
      const taken = await h.call('PUT', '/v1/names/leader/eu', { session: b.session })
      assert.equal(taken.status, 409)
      assert.deepEqual([taken.body.error.code, taken.body.error.holder], ['NameTaken', a.pid])
      const notOwner = await h.call('DELETE', '/v1/names/leader/eu', { session: b.session })
      assert.equal(notOwner.status, 403)
      const listed = await h.call('GET', '/v1/names?glob=leader/*')
      assert.deepEqual(
        listed.body.names.map((n: { name: string }) => n.name),
        ['leader/eu'],
      )

      assert.equal(
        (await h.call('DELETE', '/v1/names/leader/eu', { session: a.session })).status,
        204,
      )
      assert.equal((await h.call('GET', '/v1/names/leader/eu')).status, 404)
      await h.call('PUT', '/v1/names/solo', { session: b.session })
      await h.call('DELETE', `/v1/sessions/${b.session}`)
      assert.equal((await h.call('GET', '/v1/names/solo')).status, 404)
    } finally {
      await h.close()
    }
  })
})
