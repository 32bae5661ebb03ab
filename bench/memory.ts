/**
 * Scenario 4: heap per record and per idle watcher, as the settled heap delta (after full
 * collections) divided by the count. Records are compared with the same ids and data held in a
 * plain `Map` (what an application would hold anyway); an idle watcher is compared with a record.
 * The history (kept for resume and pagination) holds one change per write, so each figure is also
 * measured with `historySize: 1` to show that share.
 */
import { createDataspace } from '../src/index.js'
import type { DataspaceOptions } from '../src/index.js'
import { load } from './fixtures.js'
import type { Row } from './lib.js'
import { fmt, gcAvailable, settledHeap } from './lib.js'

const KIND = 'bench.mem'

/** Sizes of scenario 4. */
export interface MemorySizes {
  readonly records: number
  readonly watchers: number
}

/** Sizes of a full run. */
export const MEMORY_SIZES: MemorySizes = { records: 100_000, watchers: 100_000 }
/** Sizes of a `--quick` smoke run. */
export const MEMORY_SIZES_QUICK: MemorySizes = { records: 10_000, watchers: 10_000 }

const id = (n: number): string => `r-${n}`
/** A small data object, as a route or a worker record would carry. */
const data = (n: number): unknown => ({ port: 8000 + n, ready: true })

/** Bytes per entry of the same ids and data in a plain Map. */
function plainMapBytes(count: number): number {
  const before = settledHeap() as number
  const map = new Map<string, unknown>()
  for (let n = 0; n < count; n++) map.set(id(n), data(n))
  const after = settledHeap() as number
  if (map.size !== count) throw new Error('unreachable: keeps the map alive until measured')
  return (after - before) / count
}

async function recordBytes(count: number, options: DataspaceOptions): Promise<number> {
  const ds = createDataspace(options)
  await ds.defineKind(KIND)
  const proc = ds.process('holder')
  const before = settledHeap() as number
  await load(proc, [KIND], count, id, data)
  const after = settledHeap() as number
  if (ds.stats.records !== count)
    throw new Error(`expected ${count} records, found ${ds.stats.records}`)
  return (after - before) / count
}

function watcherBytes(count: number, options: DataspaceOptions): number {
  const ds = createDataspace(options)
  const before = settledHeap() as number
  // Idle: nobody iterates them, so each keeps its initial (empty) snapshot event queued.
  for (let i = 0; i < count; i++) ds.watch(KIND, { id: `x-${i}-*` })
  const after = settledHeap() as number
  if (ds.stats.watchers !== count)
    throw new Error(`expected ${count} watchers, found ${ds.stats.watchers}`)
  return (after - before) / count
}

/** Runs scenario 4 and returns its rows (with `null` values when `global.gc` is absent). */
export async function memoryScenarios(sizes: MemorySizes): Promise<Row[]> {
  if (!gcAvailable()) {
    const note =
      'global.gc is absent: run `node --expose-gc --import tsx bench/engine.ts` to measure memory'
    return ['per record', 'per idle watcher'].map((scenario) => ({
      group: 'memory',
      scenario,
      value: null,
      unit: 'bytes',
      baseline: null,
      ratio: null,
      target: '— (info)',
      note,
    }))
  }
  const plain = plainMapBytes(sizes.records)
  const record = await recordBytes(sizes.records, {})
  const recordNoHistory = await recordBytes(sizes.records, { historySize: 1 })
  const watcher = watcherBytes(sizes.watchers, {})
  const watcherNoHistory = watcherBytes(sizes.watchers, { historySize: 1 })
  return [
    {
      group: 'memory',
      scenario: `per record (${fmt(sizes.records)}, small data)`,
      value: record,
      unit: 'bytes',
      baseline: { label: 'same ids+data in a Map', value: plain },
      ratio: plain / record,
      target: '— (info)',
      note: `${fmt(recordNoHistory)} bytes with historySize 1, so the history holds ${fmt(record - recordNoHistory)} bytes/record`,
    },
    {
      group: 'memory',
      scenario: `per idle watcher (${fmt(sizes.watchers)}, id x-\${i}-*)`,
      value: watcher,
      unit: 'bytes',
      baseline: { label: 'per record', value: record },
      ratio: record / watcher,
      target: '— (info)',
      note: `${fmt(watcherNoHistory)} bytes with historySize 1 (each watch also publishes a $watch record)`,
    },
  ]
}
