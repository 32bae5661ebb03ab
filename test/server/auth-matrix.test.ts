// The auth matrix: every operation of the one table in auth-matrix.ts, over HTTP and over
// WebSocket, as its own process (allowed), as another session's process (Forbidden on both
// transports, nothing committed), and with a token that lacks the right (Forbidden).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { operation, OPERATION_NAMES } from '../../src/protocol/index.js'
import { ADMIN, AUTH, bearer, READER } from './auth-fixtures.js'
import { openSse, start } from './helpers.js'
import type { Harness } from './helpers.js'
import { MATRIX } from './auth-matrix.js'
import type { HttpForm, Row, WsCall } from './auth-matrix.js'
import { RawWs } from './ws-helpers.js'

interface Outcome {
  readonly ok: boolean
  readonly code: string | undefined
  readonly detail: string
}

describe('auth matrix: every operation over HTTP and WebSocket from one table', () => {
  let h: Harness
  const sockets: RawWs[] = []
  let n = 0
  let callId = 0

  before(async () => {
    h = await start({ auth: AUTH })
  })
  after(async () => {
    for (const socket of sockets) socket.close()
    await h.close()
  })

  async function httpSession(token: string): Promise<{ session: string; pid: string }> {
    const res = await h.call('POST', '/v1/sessions', {
      body: { name: 'm' },
      headers: bearer(token),
    })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return res.body as unknown as { session: string; pid: string }
  }

  async function wsSession(token: string): Promise<{ ws: RawWs; pid: string }> {
    const ws = new RawWs(h.url)
    sockets.push(ws)
    const welcome = await ws.hello({ token })
    assert.equal(welcome.type, 'welcome', JSON.stringify(welcome))
    return { ws, pid: welcome.session?.pid ?? '' }
  }

  async function setup(row: Row, pid: string, i: number): Promise<void> {
    const p = h.ds.processById(pid)
    assert.ok(p !== undefined, pid)
    await row.setup?.(h.ds, p, i)
  }

  async function http(form: HttpForm, token: string, session?: string): Promise<Outcome> {
    const path = form.path.replace(':session', session ?? 'none')
    const headers = {
      ...bearer(token),
      ...(session === undefined ? {} : { 'dataspace-session': session }),
    }
    if (form.sse === true) {
      const sse = await openSse(h.url + path, headers)
      sse.close()
      return {
        ok: sse.status === 200,
        code: sse.status === 403 ? 'Forbidden' : undefined,
        detail: String(sse.status),
      }
    }
    const res = await h.call(form.method, path, {
      ...(form.body === undefined ? {} : { body: form.body }),
      headers,
      ...(session === undefined ? {} : { session }),
    })
    return {
      ok: res.status < 300,
      code: res.body?.error?.code,
      detail: `${res.status} ${JSON.stringify(res.body)}`,
    }
  }

  async function ws(socket: RawWs, calls: readonly WsCall[]): Promise<Outcome> {
    let outcome: Outcome = { ok: false, code: undefined, detail: 'no call' }
    for (const [op, args] of calls) {
      const answer = await socket.call(++callId, op, args)
      outcome = {
        ok: answer.type === 'result',
        code: answer.error?.code,
        detail: JSON.stringify(answer),
      }
    }
    return outcome
  }

  it('has a row for every operation of the table, its pid rule as the table says', () => {
    const inTable = MATRIX.filter((row) => typeof row.ws !== 'string').map((row) => row.op)
    assert.deepEqual([...inTable].sort(), [...OPERATION_NAMES].sort())
    for (const row of MATRIX) {
      const spec = operation(row.op)
      if (spec === undefined) continue
      assert.equal(
        row.wsPid === 'args',
        spec.own.length > 0,
        `${row.op}: own pids ${spec.own.join(', ')}`,
      )
    }
  })

  it('lets a caller act as its own process on both transports', async () => {
    const { ws: socket, pid: wsPid } = await wsSession(ADMIN)
    for (const row of MATRIX) {
      if (typeof row.http !== 'string') {
        const { session, pid } = await httpSession(ADMIN)
        const i = ++n
        await setup(row, pid, i)
        const got = await http(row.http(pid, i), ADMIN, session)
        assert.ok(got.ok, `HTTP ${row.op}: ${got.detail}`)
      }
      if (typeof row.ws !== 'string') {
        const i = ++n
        await setup(row, wsPid, i)
        const got = await ws(socket, row.ws(wsPid, i))
        assert.ok(got.ok, `WS ${row.op}: ${got.detail}`)
      }
    }
  })

  it('refuses every operation that names another session’s process, on both transports', async () => {
    const victimHttp = await httpSession(READER)
    const { pid: victimPid } = await wsSession(READER)
    const { ws: socket, pid: wsPid } = await wsSession(ADMIN)
    const failures: string[] = []
    let checked = 0
    const refused = async (what: string, run: () => Promise<Outcome>): Promise<void> => {
      const revision = h.ds.revision
      const got = await run()
      checked++
      if (got.code !== 'Forbidden') failures.push(`${what}: ${got.detail}`)
      else if (h.ds.revision !== revision) failures.push(`${what} committed something`)
    }
    for (const row of MATRIX) {
      if (typeof row.http !== 'string') {
        const form = row.http
        const i = ++n
        await setup(row, victimHttp.pid, i)
        if (row.httpPid === 'args') {
          const own = await httpSession(ADMIN)
          // The victim's process, a child of it, and a pid that only looks like one of ours.
          for (const foreign of [victimHttp.pid, `${victimHttp.pid}.1`, `${own.pid}.01`]) {
            await refused(`HTTP ${row.op} ${foreign} with a session`, () =>
              http(form(foreign, i), ADMIN, own.session),
            )
            await refused(`HTTP ${row.op} ${foreign} without a session`, () =>
              http(form(foreign, i), ADMIN),
            )
          }
        } else if (row.httpPid === 'session') {
          await refused(`HTTP ${row.op} in another token's session`, () =>
            http(form(victimHttp.pid, i), ADMIN, victimHttp.session),
          )
        }
      }
      if (typeof row.ws !== 'string' && row.wsPid === 'args') {
        const ws0 = row.ws
        for (const foreign of [victimPid, `${victimPid}.1`, `${wsPid}.01`]) {
          const i = ++n
          await setup(row, victimPid, i)
          const calls = [...ws0(wsPid, i).slice(0, -1), ...ws0(foreign, i).slice(-1)]
          await refused(`WS ${row.op} ${foreign}`, () => ws(socket, calls))
        }
      }
    }
    assert.deepEqual(failures, [])
    assert.ok(checked > 60, `only ${checked} foreign-pid cases ran`)
  })

  it('refuses a pid list with one foreign pid in it, committing nothing', async () => {
    const victim = await httpSession(READER)
    const own = await httpSession(ADMIN)
    const { ws: socket, pid: wsPid } = await wsSession(ADMIN)
    for (const op of ['join', 'leave'] as const) {
      const revision = h.ds.revision
      const viaHttp = await http(
        {
          method: 'POST',
          path: `/v1/groups/m/mixed/${op}`,
          body: { pids: [own.pid, victim.pid] },
        },
        ADMIN,
        own.session,
      )
      assert.equal(viaHttp.code, 'Forbidden', `HTTP ${op}: ${viaHttp.detail}`)
      const viaWs = await ws(socket, [
        [`groups.${op}`, { scope: 'm', group: 'mixed', pids: [wsPid, victim.pid] }],
      ])
      assert.equal(viaWs.code, 'Forbidden', `WS ${op}: ${viaWs.detail}`)
      assert.equal(h.ds.revision, revision)
    }
  })

  it('refuses writes to a token with only the read right, on both transports', async () => {
    const { ws: socket, pid: wsPid } = await wsSession(READER)
    for (const row of MATRIX) {
      const expectOk = row.right === 'read'
      if (typeof row.http !== 'string') {
        const { session, pid } = await httpSession(READER)
        const i = ++n
        await setup(row, pid, i)
        const got = await http(row.http(pid, i), READER, session)
        if (expectOk) assert.ok(got.ok, `HTTP ${row.op}: ${got.detail}`)
        else assert.equal(got.code, 'Forbidden', `HTTP ${row.op}: ${got.detail}`)
      }
      if (typeof row.ws !== 'string') {
        const i = ++n
        await setup(row, wsPid, i)
        const got = await ws(socket, row.ws(wsPid, i))
        if (expectOk) assert.ok(got.ok, `WS ${row.op}: ${got.detail}`)
        else assert.equal(got.code, 'Forbidden', `WS ${row.op}: ${got.detail}`)
      }
    }
  })
})

// Without auth a session id is the only capability: the own-pid rule must hold all the same.
describe('auth matrix without auth: the own-pid rule on both transports', () => {
  let h: Harness
  const sockets: RawWs[] = []
  let n = 0
  let callId = 0

  before(async () => {
    h = await start()
  })
  after(async () => {
    for (const socket of sockets) socket.close()
    await h.close()
  })

  it('refuses every pid argument that is not the caller’s own', async () => {
    const victim = await h.session('victim')
    const own = await h.session('own')
    const socket = new RawWs(h.url)
    sockets.push(socket)
    const wsPid = (await socket.hello({})).session?.pid ?? ''
    const failures: string[] = []
    let checked = 0
    const check = async (
      what: string,
      run: () => Promise<{ status: number; code: string | undefined; detail: string }>,
    ): Promise<void> => {
      const revision = h.ds.revision
      const got = await run()
      checked++
      if (got.code !== 'Forbidden') failures.push(`${what}: ${got.detail}`)
      else if (h.ds.revision !== revision) failures.push(`${what} committed something`)
    }
    for (const row of MATRIX) {
      const p = h.ds.processById(victim.pid)
      assert.ok(p !== undefined)
      if (typeof row.http !== 'string' && row.httpPid === 'args') {
        const i = ++n
        await row.setup?.(h.ds, p, i)
        const form = row.http(victim.pid, i)
        for (const session of [own.session, undefined]) {
          await check(
            `HTTP ${row.op} ${session === undefined ? 'without' : 'with'} a session`,
            async () => {
              const res = await h.call(form.method, form.path, {
                ...(form.body === undefined ? {} : { body: form.body }),
                ...(session === undefined ? {} : { session }),
              })
              return {
                status: res.status,
                code: res.body?.error?.code,
                detail: `${res.status} ${JSON.stringify(res.body)}`,
              }
            },
          )
        }
      }
      if (typeof row.ws !== 'string' && row.wsPid === 'args') {
        const i = ++n
        await row.setup?.(h.ds, p, i)
        const calls = [...row.ws(wsPid, i).slice(0, -1), ...row.ws(victim.pid, i).slice(-1)]
        await check(`WS ${row.op}`, async () => {
          let answer: Awaited<ReturnType<RawWs['call']>> | undefined
          for (const [op, args] of calls) answer = await socket.call(++callId, op, args)
          return { status: 0, code: answer?.error?.code, detail: JSON.stringify(answer) }
        })
      }
    }
    assert.deepEqual(failures, [])
    assert.ok(checked > 20, `only ${checked} cases ran`)
  })
})
