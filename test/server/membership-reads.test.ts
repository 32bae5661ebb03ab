// /readyz and /metrics take no token and no rate limit, and both read the cluster's members from
// the database: a flood of probes must not become a flood of queries (or exhaust the pool while
// the database is slow). One read is shared by every caller while it runs.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { Membership, NodeInfo } from '../../src/backends/index.js'
import { NodeMembership } from '../../src/server/membership.js'

function countingBackend(): { backend: Membership; reads: () => number; release: () => void } {
  let reads = 0
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  const backend: Membership = {
    join: async () => {},
    heartbeat: async () => {},
    leave: async () => {},
    members: async (): Promise<NodeInfo[]> => {
      reads++
      await gate
      return []
    },
  }
  return { backend, reads: () => reads, release: () => release() }
}

describe('node membership reads', () => {
  it('a burst of probes shares one database read', async () => {
    const { backend, reads, release } = countingBackend()
    const membership = new NodeMembership('n-1', backend, 60_000, pino({ level: 'silent' }))
    const probes = Array.from({ length: 200 }, () => membership.view(true))
    release()
    const views = await Promise.all(probes)
    assert.equal(reads(), 1)
    assert.ok(views.every((view) => view.live === 0))
    // A read that settled is not reused: the next probe reads the database as it is now.
    await membership.view(false)
    assert.equal(reads(), 2)
    await membership.close()
  })
})
