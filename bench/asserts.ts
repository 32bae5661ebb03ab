/**
 * Scenario 1: asserts per second, through `transact` batches and through single `assert` calls,
 * with watchers attached. Non-matching watchers use distinct literal id prefixes, which the watch
 * hub indexes, so their count should not change the cost of a write; matching watchers show what
 * delivering events costs. The 0-watcher figure is the baseline.
 *
 * The variants run interleaved, round by round, each round in a rotated order, and every ratio is
 * the median of per-round ratios: on a shared machine the load drifts by tens of percent over a
 * minute, and only measurements taken close together in time can be compared.
 */
import { VariantRun } from './assert-run.js'
import type { Variant } from './assert-run.js'
import { BATCH } from './fixtures.js'
import type { Row } from './lib.js'
import { fmt, median, percentile } from './lib.js'

/** Sizes of scenario 1. */
export interface AssertSizes {
  readonly rounds: number
  /** Asserts per round through `transact` batches. */
  readonly batchAsserts: number
  /** Asserts per round through single `assert` calls. */
  readonly singleAsserts: number
  /** Records already in the store, so that writes do not go into an empty one. */
  readonly base: number
  /** The "many watchers" count (100k in a full run). */
  readonly manyWatchers: number
}

/** Sizes of a full run. */
export const ASSERT_SIZES: AssertSizes = {
  rounds: 7,
  batchAsserts: 40_000,
  singleAsserts: 8_000,
  base: 100_000,
  manyWatchers: 100_000,
}
/** Sizes of a `--quick` smoke run. */
export const ASSERT_SIZES_QUICK: AssertSizes = {
  rounds: 3,
  batchAsserts: 5_000,
  singleAsserts: 1_000,
  base: 10_000,
  manyWatchers: 10_000,
}

// Every variant asserts ids of one shape, `<word>-<n mod 1000>-<n>`, so that the ordered id index
// does the same work in each (its cost depends on where new ids land); only the word decides
// whether watchers match. `rec-…` matches no `route-<i>-*` watcher.
const unmatched = (n: number): string => `rec-${n % 1000}-${n}`
const route = (i: number): string => `route-${i}-*`

function variants(many: number): Variant[] {
  const quiet = { glob: route, id: unmatched, fanOut: 0, scale: 1 }
  return [
    { name: '0 watchers', watchers: 0, ...quiet },
    { name: '1k non-matching watchers', watchers: 1000, ...quiet },
    { name: `${many / 1000}k non-matching watchers`, watchers: many, ...quiet },
    // Watcher `route-7-*` gets exactly the ids `route-7-…`: one event per assert, drained.
    {
      name: '1k watchers, each assert matches 1',
      watchers: 1000,
      glob: route,
      id: (n) => `route-${n % 1000}-${n}`,
      fanOut: 1,
      scale: 1,
    },
    {
      name: '1k watchers, each assert matches all',
      watchers: 1000,
      glob: () => 'fan-*',
      id: (n) => `fan-${n % 1000}-${n}`,
      fanOut: 1000,
      scale: 50,
    },
  ]
}

type Mode = 'batch' | 'single'

/** Runs every variant once per round, in an order rotated each round; rates[variant][round]. */
async function rounds(
  runs: readonly VariantRun[],
  mode: Mode,
  sizes: AssertSizes,
): Promise<number[][]> {
  const rates = runs.map((): number[] => [])
  for (let round = 0; round < sizes.rounds; round++) {
    for (let k = 0; k < runs.length; k++) {
      const index = (k + round) % runs.length
      const run = runs[index] as VariantRun
      const scale = run.variant.scale
      const rate =
        mode === 'batch'
          ? await run.batch(Math.max(BATCH, sizes.batchAsserts / scale))
          : await run.single(Math.max(100, Math.round(sizes.singleAsserts / scale)))
      rates[index]?.push(rate)
    }
  }
  return rates
}

/** Runs scenario 1 and returns its rows. */
export async function assertScenarios(sizes: AssertSizes): Promise<Row[]> {
  const runs: VariantRun[] = []
  for (const variant of variants(sizes.manyWatchers)) {
    runs.push(await VariantRun.open(variant, sizes.base, unmatched))
  }
  // A small untimed round first, so that no variant is measured with a cold JIT.
  for (const run of runs) {
    await run.batch(BATCH)
    await run.single(100)
  }
  const rows: Row[] = []
  for (const mode of ['batch', 'single'] as const) {
    const rates = await rounds(runs, mode, sizes)
    const baseRates = rates[0] as number[]
    const base = median(baseRates)
    runs.forEach((run, index) => {
      const own = rates[index] as number[]
      const variant = run.variant
      const isBase = index === 0
      // Each round's ratio compares two figures taken seconds apart; the median drops outlier rounds.
      const ratio = median(own.map((rate, round) => rate / (baseRates[round] as number)))
      const independent = variant.fanOut === 0 && !isBase
      const notes: string[] = []
      if (isBase) {
        const spread = `${fmt(percentile(own, 0))}–${fmt(percentile(own, 100))}`
        notes.push(`median of ${own.length} rounds, which ranged ${spread}`)
      }
      if (variant.watchers > 0 && mode === 'batch') {
        notes.push(`attaching ${fmt(variant.watchers)} watchers took ${fmt(run.attachMs)} ms`)
      }
      if (variant.fanOut > 1) notes.push(`${fmt(median(own) * variant.fanOut)} events/s delivered`)
      const problem = mode === 'single' ? run.problem() : undefined
      if (problem !== undefined) notes.push(`PROBLEM: ${problem}`)
      rows.push({
        group: 'asserts',
        scenario: `${mode === 'batch' ? `transact ×${BATCH}` : 'single assert'}, ${variant.name}`,
        value: median(own),
        unit: 'asserts/s',
        baseline: { label: '0 watchers', value: base },
        ratio,
        target:
          isBase && mode === 'batch' ? '≥ 1M/s' : independent ? '≥ 0.9× (no cost)' : '— (info)',
        ...(isBase && mode === 'batch' ? { met: base >= 1_000_000 } : {}),
        ...(independent ? { met: ratio >= 0.9 } : {}),
        ...(notes.length > 0 ? { note: notes.join('; ') } : {}),
      })
    })
  }
  return rows
}
