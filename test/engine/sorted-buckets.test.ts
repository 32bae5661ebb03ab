// Index buckets keep their id order across writes (a sorted copy maintained by each write, and
// dropped after many): lists and claims served from a bucket must always see it exactly.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import fc from 'fast-check'
import { createDataspace } from '../../src/index.js'

it('lists an indexed bucket in id order after any mix of inserts, updates and removals', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          op: fc.constantFrom('put', 'move', 'retract', 'list'),
          id: fc.integer({ min: 0, max: 150 }),
        }),
        { minLength: 1, maxLength: 400 },
      ),
      async (steps) => {
        const ds = createDataspace()
        await ds.defineKind('w', { indexes: ['pool'] })
        const p = ds.process('p')
        const model = new Map<string, string>() // id → pool
        // Many records elsewhere, so that the planner serves pool=a from its bucket, not by ids.
        await p.transact({
          then: Array.from({ length: 600 }, (_, i) => ({
            op: 'assert' as const,
            kind: 'w',
            id: `z${i}`,
            data: { pool: 'c' },
          })),
        })
        const check = async (): Promise<void> => {
          const { index } = await ds.explain('w', { fields: 'pool=a' })
          assert.equal(index, 'field:pool')
          const { items } = await ds.list('w', { fields: 'pool=a' })
          const expected = [...model].filter(([, pool]) => pool === 'a').map(([id]) => id)
          assert.deepEqual(
            items.map((r) => r.id),
            expected.sort(),
          )
        }
        await check() // the first ordered read makes the sorted copy
        for (const { op, id } of steps) {
          const key = `r${String(id).padStart(3, '0')}`
          if (op === 'put') {
            await p.assert('w', key, { pool: 'a', n: id })
            model.set(key, 'a')
          } else if (op === 'move' && model.has(key)) {
            await p.assert('w', key, { pool: model.get(key) === 'a' ? 'b' : 'a' })
            model.set(key, model.get(key) === 'a' ? 'b' : 'a')
          } else if (op === 'retract' && model.has(key)) {
            await p.retract('w', key)
            model.delete(key)
          } else if (op === 'list') {
            await check()
          }
        }
        await check()
        // A claim in id order takes the lowest id of the bucket.
        const first = [...model]
          .filter(([, pool]) => pool === 'a')
          .map(([id]) => id)
          .sort()[0]
        const claimed = await p.claim('w', { fields: 'pool=a', patch: { taken: true } })
        assert.equal(claimed?.id, first)
        await ds.close()
      },
    ),
    { numRuns: 60 },
  )
})
