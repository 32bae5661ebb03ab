// The members are read from the database by /readyz, a /metrics scrape and GET /v1/nodes, and
// /readyz takes no token: however many of them arrive while one read is out, the database
// sees one query, not one per request (a timed-out read keeps running, so they would pile up).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { Membership, NodeInfo } from '../../src/backends/index.js'
import { NodeMembership } from '../../src/server/membership.js'

describe('NodeMembership reads', () => {
  it('requests made while a members read is out share it', async () => {
    let reads = 0
    let pending: ((members: NodeInfo[]) => void)[] = []
    const answer = (members: NodeInfo[]): void => {
      for (const resolve of pending) resolve(members)
      pending = []
    }
    const backend: Membership = {
      join: async () => {},
      heartbeat: async () => {},
      leave: async () => {},
      members: () => {
        reads++
        return new Promise((resolve) => pending.push(resolve))
      },
    }
    const membership = new NodeMembership('n1', backend, 60_000, pino({ level: 'silent' }))
    const views = Array.from({ length: 50 }, () => membership.view(false))
    const listed = membership.members()
    answer([])
    assert.deepEqual(await Promise.all(views), Array(50).fill({ live: 0 }))
    assert.deepEqual(await listed, [])
    assert.equal(reads, 1)
    // Once answered, the next request reads again: nothing stale is served.
    const next = membership.members()
    answer([])
    await next
    assert.equal(reads, 2)
    await membership.close()
  })
})
