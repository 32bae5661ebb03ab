import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Conflict, createDataspace } from '../../src/index.js'
import type { Op, Process } from '../../src/index.js'
import { runCommands } from './model-run.js'
import { command, describeError, KINDS, settle, setup } from './model-helpers.js'
import type { Data, Kind, Rec } from './model-helpers.js'

// A seeded model test: random command sequences run against the engine and a reference model
// (a plain map), and after every command the engine must agree with the model — state, errors,
// revisions, and every open watcher's materialised view. Replay a failure with the printed
// FC_SEED (fast-check's message also gives the `path` of the shrunk counterexample).

const numRuns = Number(process.env.MODEL_RUNS ?? 500)
const seed =
  process.env.FC_SEED === undefined
    ? Math.floor(Math.random() * 0x7fffffff)
    : Number(process.env.FC_SEED)
console.log(`engine model test: FC_SEED=${seed} MODEL_RUNS=${numRuns}`)

async function check<Ts extends [unknown, ...unknown[]]>(
  property: fc.IAsyncProperty<Ts>,
): Promise<void> {
  try {
    await fc.assert(property, { numRuns, seed, includeErrorInReport: true })
  } catch (error) {
    if (error instanceof Error) {
      error.message = `replay with FC_SEED=${seed} MODEL_RUNS=${numRuns}\n${error.message}`
    }
    throw error
  }
}

// ---------------------------------------------------------------------------------------------
// Claim races

type Claimer = {
  readonly p: number
  readonly via: 'claim' | 'claim-self' | 'transact' | 'transact-optional'
}

/** Starts every claimer at once (Promise.all) and checks no record is claimed twice. */
async function claimRace(
  kindName: Kind,
  records: readonly { readonly group: 'x' | 'y'; readonly owner: number }[],
  claimers: readonly Claimer[],
): Promise<void> {
  const ds = createDataspace()
  try {
    await ds.defineKind(KINDS[0], { indexes: ['group'] })
    const procs = [ds.process('a'), ds.process('b'), ds.process('c')]
    for (const [index, { group, owner }] of records.entries()) {
      await (procs[owner % procs.length] as Process).assert(kindName, `r${index}`, {
        group,
        v: index,
      })
    }
    const matching = records.flatMap((r, index) => (r.group === 'x' ? [`r${index}`] : []))
    const revision = ds.revision
    const selector = { fields: 'group=x' } as const
    const outcomes = await Promise.all(
      claimers.map(async ({ p, via }) => {
        const proc = procs[p % procs.length] as Process
        switch (via) {
          case 'claim':
            return settle(proc.claim<Data>(kindName, { ...selector, patch: { group: 'y' } }))
          case 'claim-self':
            return settle(
              proc.claim<Data>(kindName, { ...selector, patch: { group: 'y', owner: 'self' } }),
            )
          case 'transact':
          case 'transact-optional': {
            const optional = via === 'transact-optional'
            const op: Op = {
              op: 'claim',
              kind: kindName,
              ...selector,
              patch: { group: 'y' },
              optional,
            }
            const result = await settle(proc.transact({ then: [op] }))
            return result.ok
              ? { ok: true as const, value: result.value.results[0] as Rec | undefined }
              : result
          }
          default:
            via satisfies never
            throw new Error('unknown claimer')
        }
      }),
    )
    const claimed: string[] = []
    for (const [index, outcome] of outcomes.entries()) {
      const claimer = claimers[index] as Claimer
      if (!outcome.ok) {
        assert.ok(
          outcome.error instanceof Conflict,
          `claimer ${index}: ${describeError(outcome.error)}`,
        )
        assert.equal(
          claimer.via,
          'transact',
          'only a non-optional transact claim fails on no match',
        )
        continue
      }
      const record = outcome.value
      if (record === undefined) continue
      claimed.push(record.id)
      assert.equal(record.data.group, 'y', 'the patch is applied')
      const proc = procs[claimer.p % procs.length] as Process
      if (claimer.via === 'claim-self') assert.equal(record.owner, proc.id, 'owner: self')
      else {
        const original = records[Number(record.id.slice(1))]?.owner ?? -1
        assert.equal(
          record.owner,
          (procs[original % procs.length] as Process).id,
          'ownership unchanged',
        )
      }
    }
    const expected = Math.min(claimers.length, matching.length)
    assert.equal(
      new Set(claimed).size,
      claimed.length,
      `a record was claimed twice: ${claimed.join(',')}`,
    )
    assert.equal(claimed.length, expected, 'exactly min(claimers, matches) succeed')
    // Each claim takes the lowest matching id, so the claimed set is a prefix of the matches.
    assert.deepStrictEqual([...claimed].sort(), matching.slice(0, expected).sort())
    assert.equal(ds.revision, revision + expected, 'one commit per successful claim')
    const { items } = await ds.list(kindName, selector)
    assert.deepStrictEqual(
      items.map((r) => r.id),
      matching.slice(expected),
    )
  } finally {
    await ds.close()
  }
}

// ---------------------------------------------------------------------------------------------

describe('engine model (fast-check)', () => {
  it('random command sequences keep engine, model and watchers in agreement', async () => {
    const started = Date.now()
    await check(
      fc.asyncProperty(
        setup,
        fc.array(command, { minLength: 1, maxLength: 40, size: 'max' }),
        runCommands,
      ),
    )
    console.log(`engine model test: ${numRuns} runs in ${Date.now() - started} ms`)
  })

  it('two concurrent claimers never get the same record', async () => {
    for (const matches of [0, 1, 2, 3]) {
      const records = [0, 1, 2, 3].map((i) => ({
        group: i < matches ? ('x' as const) : ('y' as const),
        owner: i,
      }))
      for (const kindName of KINDS) {
        await claimRace(kindName, records, [
          { p: 0, via: 'claim' },
          { p: 1, via: 'claim-self' },
        ])
      }
    }
  })

  it('10 claimers over 5 matching records: exactly 5 succeed, all different', async () => {
    const groups = ['x', 'x', 'y', 'x', 'x', 'y', 'x', 'y'] as const
    const records = groups.map((group, i) => ({ group, owner: i }))
    for (const kindName of KINDS) {
      await claimRace(
        kindName,
        records,
        Array.from({ length: 10 }, (_, i) => ({ p: i, via: i % 2 === 0 ? 'claim' : 'claim-self' })),
      )
    }
  })

  it('random claim races: distinct records, min(claimers, matches) succeed', async () => {
    await check(
      fc.asyncProperty(
        fc.constantFrom(...KINDS),
        fc.array(
          fc.record({ group: fc.constantFrom('x' as const, 'y' as const), owner: fc.nat(2) }),
          {
            maxLength: 8,
          },
        ),
        fc.array(
          fc.record({
            p: fc.nat(2),
            via: fc.constantFrom('claim', 'claim-self', 'transact', 'transact-optional'),
          }),
          { minLength: 1, maxLength: 10 },
        ),
        claimRace,
      ),
    )
  })
})
