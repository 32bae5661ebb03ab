/**
 * The engine benchmark: asserts per second with and without watchers, indexed list against a full
 * scan, the exit of a process owning many records, and memory per record and per idle watcher.
 * Every figure is compared with a baseline measured in this same run. Prints a table and writes
 * `bench/results/engine.json`. Timings are never asserted; a missed target is reported, not failed.
 *
 * @example
 * // Full run (memory figures need --expose-gc), about two minutes on two cores:
 * //   node --expose-gc --import tsx bench/engine.ts
 * // Smoke run with small sizes:
 * //   npm run bench -- --quick
 * // One group only:
 * //   node --expose-gc --import tsx bench/engine.ts --only=list
 */
import { ASSERT_SIZES, ASSERT_SIZES_QUICK, assertScenarios } from './asserts.js'
import { EXIT_SIZES, EXIT_SIZES_QUICK, exitScenarios } from './exit.js'
import type { BenchArgs, Row } from './lib.js'
import {
  fmt,
  gcAvailable,
  machine,
  msSince,
  now,
  parseArgs,
  printTable,
  settledHeap,
  writeJson,
} from './lib.js'
import { LIST_SIZES, LIST_SIZES_QUICK, listScenarios } from './list.js'
import { MEMORY_SIZES, MEMORY_SIZES_QUICK, memoryScenarios } from './memory.js'

let args: BenchArgs
try {
  args = parseArgs(process.argv.slice(2))
} catch (error) {
  console.error((error as Error).message)
  process.exit(2)
}
const sizes = {
  asserts: args.quick ? ASSERT_SIZES_QUICK : ASSERT_SIZES,
  list: args.quick ? LIST_SIZES_QUICK : LIST_SIZES,
  exit: args.quick ? EXIT_SIZES_QUICK : EXIT_SIZES,
  memory: args.quick ? MEMORY_SIZES_QUICK : MEMORY_SIZES,
}
// Memory runs first, on the cleanest heap; the rest run in the order of DESIGN's concerns.
const groups: [string, () => Promise<Row[]>][] = [
  ['memory', () => memoryScenarios(sizes.memory)],
  ['asserts', () => assertScenarios(sizes.asserts)],
  ['list', () => listScenarios(sizes.list)],
  ['exit', () => exitScenarios(sizes.exit)],
]

const host = machine()
console.log(
  `engine benchmark${args.quick ? ' (--quick)' : ''}: ${host['cpu']}, ${host['cores']} cores, ` +
    `node ${host['node']}, ${host['platform']}, heap limit ${host['heapLimitMiB']} MiB`,
)
if (!gcAvailable()) {
  console.log(
    'global.gc is absent: memory figures are skipped (run with node --expose-gc --import tsx)',
  )
}

const started = now()
const rows: Row[] = []
const durations: Record<string, number> = {}
for (const [name, run] of groups) {
  if (args.only.size > 0 && !args.only.has(name)) continue
  process.stdout.write(`running ${name}…`)
  const start = now()
  rows.push(...(await run()))
  durations[name] = msSince(start)
  console.log(` ${fmt(durations[name] / 1000)} s`)
  // Each group leaves a large dataspace behind: collect it so the next group starts clean.
  settledHeap()
}
const totalMs = msSince(started)

console.log()
printTable(rows)
const path = writeJson(new URL('./results/engine.json', import.meta.url), {
  benchmark: 'engine',
  date: new Date().toISOString(),
  quick: args.quick,
  gc: gcAvailable(),
  machine: host,
  sizes,
  durationsMs: durations,
  totalMs,
  rows,
})
console.log(`\n${rows.length} rows in ${fmt(totalMs / 1000)} s; written to ${path}`)
