/**
 * Scenario 2: a field selector served by a declared index against the same selector on an
 * identical kind without the index (a full scan), and an id-prefix glob (served by the ordered id
 * index) against a glob without a literal prefix (a scan). Both kinds hold the same records, even
 * the same data objects, so the only difference is the access path.
 */
import { createDataspace } from '../src/index.js'
import type { Dataspace, ListOptions } from '../src/index.js'
import { load, paddedId } from './fixtures.js'
import type { Row } from './lib.js'
import { fmt, median, msSince, now, settledHeap, timeMs } from './lib.js'

const INDEXED = 'bench.indexed'
const PLAIN = 'bench.plain'
/** Distinct `pool` values: each selects records / POOLS records. */
const POOLS = 1000

/** Sizes of scenario 2. */
export interface ListSizes {
  readonly records: number
  /** Repetitions of each fast (indexed) query; the slow scans run fewer times. */
  readonly fastReps: number
  readonly scanReps: number
}

/** Sizes of a full run. */
export const LIST_SIZES: ListSizes = { records: 1_000_000, fastReps: 200, scanReps: 5 }
/** Sizes of a `--quick` smoke run. */
export const LIST_SIZES_QUICK: ListSizes = { records: 100_000, fastReps: 50, scanReps: 3 }

interface Timed {
  readonly ms: number
  readonly ids: readonly string[]
  readonly index: string | null
}

/**
 * Times `reps` runs of a list (median), varying the query with `rep` so that no run repeats the
 * previous one's work, and returns the ids of the first run for a correctness check.
 */
async function timeList(
  ds: Dataspace,
  kind: string,
  reps: number,
  options: (rep: number) => ListOptions,
): Promise<Timed> {
  const samples: number[] = []
  let ids: readonly string[] = []
  settledHeap()
  for (let rep = 0; rep < reps; rep++) {
    let items: readonly { id: string }[] = []
    samples.push(await timeMs(async () => ({ items } = await ds.list(kind, options(rep)))))
    if (rep === 0) ids = items.map((item) => item.id)
  }
  const { index } = await ds.explain(kind, options(0))
  return { ms: median(samples), ids, index }
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i])
}

/** Runs scenario 2 and returns its rows. */
export async function listScenarios(sizes: ListSizes): Promise<Row[]> {
  const ds = createDataspace()
  await ds.defineKind(INDEXED, { indexes: ['pool'] })
  await ds.defineKind(PLAIN)
  const proc = ds.process('loader')
  const loadStart = now()
  await load(
    proc,
    [INDEXED, PLAIN],
    sizes.records,
    (n) => paddedId('w-', n),
    (n) => ({ pool: `p${n % POOLS}`, port: 8000 + (n % 100), ready: n % 2 === 0 }),
  )
  const loadMs = msSince(loadStart)
  const perPool = sizes.records / POOLS
  const pool = (rep: number): ListOptions => ({ fields: `pool=p${(7 + rep) % POOLS}` })
  const indexed = await timeList(ds, INDEXED, sizes.fastReps, pool)
  // The same query again and again: a bucket is sorted by id on its first ordered read and kept
  // until a write touches it, so a read-mostly list skips the sort. Reported separately.
  const warm = await timeList(ds, INDEXED, sizes.fastReps, () => pool(0))
  const scanned = await timeList(ds, PLAIN, sizes.scanReps, pool)
  // w-0000* … w-0099* exist at every size: each prefix selects 1000 ids (100 in a quick run for `*00xx`).
  const two = (rep: number): string => String((42 + rep) % 100).padStart(2, '0')
  const prefix = await timeList(ds, PLAIN, sizes.fastReps, (rep) => ({ id: `w-00${two(rep)}*` }))
  const suffix = await timeList(ds, PLAIN, sizes.scanReps, (rep) => ({ id: `*00${two(rep)}` }))

  const fieldProblems: string[] = []
  if (indexed.index !== 'field:pool') fieldProblems.push(`explain says ${indexed.index}`)
  if (scanned.index !== null) fieldProblems.push(`explain on the plain kind says ${scanned.index}`)
  if (indexed.ids.length !== perPool || !sameIds(indexed.ids, scanned.ids)) {
    fieldProblems.push(
      `indexed and scanned results differ (${indexed.ids.length} vs ${scanned.ids.length} items)`,
    )
  }
  const fieldRatio = scanned.ms / indexed.ms
  const loaded = `${fmt(sizes.records * 2)} records loaded in ${fmt(loadMs / 1000)} s (${fmt((sizes.records * 2 * 1000) / loadMs)} asserts/s)`
  const scanCost = `the scan costs ${fmt((scanned.ms * 1e6) / sizes.records)} ns/record`
  const prefixProblems = prefix.index === 'id-prefix' ? [] : [`explain says ${prefix.index}`]
  if (prefix.ids.length !== 1000)
    prefixProblems.push(`prefix glob returned ${prefix.ids.length} items`)
  return [
    {
      group: 'list',
      scenario: `fields pool=p7 over ${fmt(sizes.records)}, indexed (${indexed.index})`,
      value: indexed.ms,
      unit: 'ms (p50)',
      baseline: { label: 'same on unindexed kind (full scan)', value: scanned.ms },
      ratio: fieldRatio,
      target: '≥ 1000× faster',
      met: fieldRatio >= 1000 && fieldProblems.length === 0,
      note: [
        `${fmt(perPool)} matches`,
        scanCost,
        loaded,
        ...fieldProblems.map((p) => `PROBLEM: ${p}`),
      ].join('; '),
    },
    {
      group: 'list',
      scenario: `same, repeating one query (bucket already sorted)`,
      value: warm.ms,
      unit: 'ms (p50)',
      baseline: { label: 'full scan', value: scanned.ms },
      ratio: scanned.ms / warm.ms,
      target: '≥ 1000× faster',
      met: scanned.ms / warm.ms >= 1000,
      note: 'each rep of the row above asks for another pool, so it pays the first sort every time',
    },
    {
      group: 'list',
      scenario: `id w-0042* over ${fmt(sizes.records)} (${prefix.index})`,
      value: prefix.ms,
      unit: 'ms (p50)',
      baseline: { label: 'id *0042 (full scan)', value: suffix.ms },
      ratio: suffix.ms / prefix.ms,
      target: 'served by id-prefix index',
      met: prefixProblems.length === 0,
      note: [
        `${prefix.ids.length} vs ${suffix.ids.length} matches`,
        ...prefixProblems.map((p) => `PROBLEM: ${p}`),
      ].join('; '),
    },
  ]
}
