import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDataspace, InvalidArgument, TooLarge } from '../../src/index.js'
import type { Dataspace } from '../../src/index.js'
import { drain, queued } from './helpers.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A record body of about `bytes` bytes (one string: cheap to build, honest to measure). */
function blob(bytes: number, tag: number): { tag: number; body: string } {
  return { tag, body: 'x'.repeat(bytes) }
}

/** Asserts `fn` rejects with TooLarge naming the memory budget. */
async function refusedForBudget(fn: () => Promise<unknown>): Promise<TooLarge> {
  try {
    await fn()
  } catch (error) {
    assert.ok(error instanceof TooLarge, `expected TooLarge, got ${String(error)}`)
    assert.equal(error.limit, 'memoryBudgetBytes')
    assert.match(error.message, /memoryBudgetBytes/)
    return error
  }
  assert.fail('expected the write to be refused for the memory budget')
}

function used(ds: Dataspace): number {
  return ds.stats.memoryUsedBytes
}

describe('memory bounds in bytes', () => {
  it('keeps the history under its byte cap while one process overwrites a large record', async () => {
    const ds = createDataspace({ historyBytes: 2 * MiB })
    const p = ds.process('writer')
    for (let i = 0; i < 60; i++) {
      await p.assert('blob', 'one', blob(256 * KiB, i))
      assert.ok(
        ds.stats.historyBytes <= 2 * MiB,
        `history holds ${ds.stats.historyBytes} bytes after ${i + 1} overwrites; cap 2 MiB`,
      )
    }
    // It holds several versions, not none: the cap trims the oldest, it does not disable history.
    assert.ok(ds.stats.historyBytes >= 1 * MiB, `history holds ${ds.stats.historyBytes} bytes`)
    assert.ok(ds.stats.historyTrimmedCommits > 0)
    await ds.close()
  })

  it('resets a watcher resuming from before the byte trim and gives it a snapshot', async () => {
    const ds = createDataspace({ historyBytes: 1 * MiB })
    const p = ds.process('writer')
    const start = (await p.assert('blob', 'one', blob(128 * KiB, 0))).revision
    for (let i = 1; i <= 20; i++) await p.assert('blob', 'one', blob(128 * KiB, i))
    assert.ok(ds.stats.historyFloor > start, `floor ${ds.stats.historyFloor} ≤ ${start}`)
    const watch = ds.watch<{ tag: number }>('blob', { fromRevision: start })
    const events = await drain(watch)
    assert.deepEqual(
      events.map((e) => e.type),
      ['reset', 'snapshot'],
    )
    const snapshot = events[1]
    assert.ok(snapshot?.type === 'snapshot')
    assert.equal(snapshot.records[0]?.data.tag, 20)
    await ds.close()
  })

  it('resets a slow watcher whose queue passes its byte cap, and counts it', async () => {
    const ds = createDataspace({ watchBufferBytes: 1 * MiB })
    const p = ds.process('writer')
    const watch = ds.watch('blob', { snapshot: false })
    for (let i = 0; i < 12; i++) await p.assert('blob', `r${i}`, blob(128 * KiB, i))
    assert.ok(ds.stats.watchQueueBytes <= 1 * MiB + 256 * KiB, `${ds.stats.watchQueueBytes}`)
    const types = (await drain(watch)).map((e) => e.type)
    assert.ok(types.includes('reset'), `expected a reset in ${types.join(',')}`)
    assert.ok(ds.stats.watchResets >= 1)
    assert.ok(ds.stats.watchByteResets >= 1)
    // Once read, the queue holds nothing.
    assert.equal(ds.stats.watchQueueBytes, 0)
    await ds.close()
  })

  it('drops and counts messages to a mailbox past its byte cap', async () => {
    const ds = createDataspace({ mailboxBytes: 1 * MiB })
    const from = ds.process('from')
    const to = ds.process('to')
    let delivered = 0
    for (let i = 0; i < 12; i++) delivered += await from.send(to.id, 'y'.repeat(128 * KiB))
    assert.ok(delivered < 12 && delivered >= 6, `delivered ${delivered}`)
    assert.equal(ds.stats.droppedMailboxMessages, 12 - delivered)
    assert.ok(ds.stats.mailboxBytes <= 1 * MiB, `${ds.stats.mailboxBytes}`)
    const got = await queued(to.messages)
    assert.equal(got.length, delivered)
    assert.equal(ds.stats.mailboxBytes, 0)
    await ds.close()
  })

  it('refuses writes past the memory budget with TooLarge, while retract and exit still work', async () => {
    const budget = 4 * MiB
    const ds = createDataspace({ memoryBudgetBytes: budget })
    assert.equal(ds.stats.memoryBudgetBytes, budget)
    const p = ds.process('writer')
    let written = 0
    let refused: TooLarge | undefined
    for (let i = 0; i < 40 && refused === undefined; i++) {
      try {
        await p.assert('blob', `r${i}`, blob(256 * KiB, i))
        written++
      } catch (error) {
        refused = await refusedForBudget(() => {
          throw error
        })
      }
    }
    assert.ok(refused !== undefined, `${written} records of 256 KiB were all accepted`)
    assert.ok(written >= 4, `only ${written} writes before the budget refused`)
    assert.ok(used(ds) <= budget, `used ${used(ds)} > budget ${budget}`)
    assert.ok(ds.stats.memoryRefusedWrites >= 1)
    // A transaction and a claim that add bytes are refused the same way.
    await refusedForBudget(() =>
      p.transact({ then: [{ op: 'assert', kind: 'blob', id: 'tx', data: blob(512 * KiB, 0) }] }),
    )
    // Retracting still works past the budget, and frees room for a write.
    await p.retract('blob', 'r0')
    await p.retract('blob', 'r1')
    await p.assert('blob', 'again', blob(64 * KiB, 0))
    // A second process fills the budget again; its exit retracts what it owns regardless.
    const q = ds.process('filler')
    for (let i = 0; i < 40; i++) {
      try {
        await q.assert('blob', `q${i}`, blob(256 * KiB, i))
      } catch {
        break
      }
    }
    await refusedForBudget(() => q.assert('blob', 'more', blob(256 * KiB, 0)))
    await q.exit()
    assert.equal((await ds.list('blob', { owner: q.id })).items.length, 0)
    await p.assert('blob', 'after-exit', blob(256 * KiB, 0))
    await ds.close()
  })

  it('resets watchers that do not read before refusing a write for the budget', async () => {
    const ds = createDataspace({ memoryBudgetBytes: 4 * MiB, watchBufferBytes: 2 * MiB })
    const p = ds.process('writer')
    const idle = ds.watch('blob', { snapshot: false })
    let written = 0
    for (let i = 0; i < 40; i++) {
      try {
        await p.assert('blob', `r${i}`, blob(256 * KiB, i))
        written++
      } catch (error) {
        assert.ok(error instanceof TooLarge)
        break
      }
    }
    // The idle watcher's queue (up to 2 MiB) was shed, not charged against the writers.
    assert.ok(written >= 10, `only ${written} writes of 256 KiB before refusal`)
    assert.ok(ds.stats.watchByteResets >= 1)
    const types = (await drain(idle)).map((e) => e.type)
    assert.ok(types.includes('reset'), `expected a reset in ${types.join(',')}`)
    await ds.close()
  })

  it('has a default budget below the V8 heap limit, and rejects a bad one', async () => {
    const ds = createDataspace()
    const { heap_size_limit: limit } = (await import('node:v8')).getHeapStatistics()
    assert.ok(ds.stats.memoryBudgetBytes > 0 && ds.stats.memoryBudgetBytes < limit)
    assert.ok(ds.stats.memoryUsedBytes >= 0)
    await ds.close()
    assert.throws(() => createDataspace({ memoryBudgetBytes: -1 }), /memoryBudgetBytes/)
  })
})

describe('selector bounds', () => {
  it('refuses an id selector far longer than any id, on every path that takes one', async () => {
    const ds = createDataspace()
    const long = `${'a'.repeat(64 * KiB)}*`
    await assert.rejects(ds.list('k', { id: long }), InvalidArgument)
    assert.throws(() => ds.watch('k', { id: long }), InvalidArgument)
    await assert.rejects(ds.kv('b').scan({ prefix: 'a'.repeat(64 * KiB) }), InvalidArgument)
    // An escaped id of the longest length is still a valid selector.
    await ds.kv('b').put('\\*'.repeat(512), 1)
    assert.equal((await ds.kv('b').scan({ prefix: '\\*'.repeat(512) })).entries.length, 1)
    await ds.close()
  })
})
