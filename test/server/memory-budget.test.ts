// The engine's memory budget seen from the network: a write past it is TooLarge (413) naming
// `memoryBudgetBytes` over HTTP and WebSocket alike, retracts and session ends still work, and
// /metrics shows the budget, what is used and what was refused.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { connect } from '../../src/client/index.js'
import { createDataspace, TooLarge } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'
import { seriesValue } from './helpers.js'

const KiB = 1024
const MiB = 1024 * KiB
const BUDGET = 6 * MiB

describe('memory budget over the server', () => {
  let ds: Dataspace
  let server: DataspaceServer

  before(async () => {
    ds = createDataspace({ memoryBudgetBytes: BUDGET })
    server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }) })
  })
  after(async () => {
    await server.close()
    await ds.close()
  })

  const call = async (
    method: string,
    path: string,
    body?: unknown,
    session?: string,
  ): Promise<{ status: number; body: Record<string, Record<string, unknown>> }> => {
    const res = await fetch(server.url + path, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(session === undefined ? {} : { 'dataspace-session': session }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as never }
  }

  it('refuses an HTTP write past the budget with 413 TooLarge naming memoryBudgetBytes', async () => {
    const opened = await call('POST', '/v1/sessions', { name: 'filler' })
    assert.equal(opened.status, 201)
    const session = opened.body['session'] as unknown as string
    let accepted = 0
    let refused: { status: number; body: Record<string, Record<string, unknown>> } | undefined
    for (let i = 0; i < 40; i++) {
      const res = await call(
        'PUT',
        `/v1/records/mem.http/r${i}`,
        { data: 'x'.repeat(512 * KiB) },
        session,
      )
      if (res.status === 200) accepted++
      else {
        refused = res
        break
      }
    }
    assert.ok(refused !== undefined, `all ${accepted} writes of 512 KiB were accepted`)
    assert.ok(accepted >= 4, `only ${accepted} writes accepted`)
    assert.equal(refused.status, 413)
    assert.equal(refused.body['error']?.['code'], 'TooLarge')
    assert.equal(refused.body['error']?.['limit'], 'memoryBudgetBytes')
    assert.match(String(refused.body['error']?.['message']), /memoryBudgetBytes/)

    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.equal(seriesValue(metrics, 'dataspace_memory_budget_bytes'), BUDGET)
    const used = seriesValue(metrics, 'dataspace_memory_used_bytes') ?? NaN
    assert.ok(used > accepted * 512 * KiB && used <= BUDGET, `used ${used}`)
    assert.ok((seriesValue(metrics, 'dataspace_memory_refused_writes_total') ?? 0) >= 1)
    assert.ok((seriesValue(metrics, 'dataspace_heap_used_bytes') ?? 0) > 0)
    assert.ok((seriesValue(metrics, 'dataspace_memory_bytes{part="records"}') ?? 0) > 0)

    // Past the budget, a retract still works, and so does ending the session (its exit).
    assert.equal((await call('DELETE', '/v1/records/mem.http/r0', undefined, session)).status, 200)
    assert.equal((await call('DELETE', `/v1/sessions/${session}`, undefined, session)).status, 204)
    assert.equal((await ds.list('mem.http')).items.length, 0)
  })

  it('gives a WebSocket client the same TooLarge, and its retracts still work', async () => {
    const client = await connect(server.url, { name: 'ws-filler' })
    try {
      let error: unknown
      let accepted = 0
      for (let i = 0; i < 40 && error === undefined; i++) {
        try {
          await client.session.assert('mem.ws', `r${i}`, { body: 'y'.repeat(512 * KiB) })
          accepted++
        } catch (caught) {
          error = caught
        }
      }
      assert.ok(error instanceof TooLarge, `expected TooLarge, got ${String(error)}`)
      assert.equal(error.limit, 'memoryBudgetBytes')
      assert.match(error.message, /memoryBudgetBytes/)
      assert.ok(accepted >= 4, `only ${accepted} writes accepted`)
      await client.session.retract('mem.ws', 'r0')
      await client.session.assert('mem.ws', 'small', { ok: true })
    } finally {
      await client.close()
    }
    assert.equal((await ds.list('mem.ws')).items.length, 0)
  })
})
