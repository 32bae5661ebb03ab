/**
 * The process-groups benchmark: join+leave throughput among 100k groups, `members()` and
 * `broadcast()` of a 10k-member group, and what open monitors cost a write. Every figure is set
 * against a hand-written `Map<group, Map<pid, count>>` measured in this same run, so the table
 * reads as the price of the dataspace's guarantees (one commit per op, watchable, auto-leave on
 * exit). Prints a table and writes `bench/results/groups.json`. Timings are never asserted.
 *
 * @example
 * // Full run, 20–50 s on two cores (depending on load):
 * //   node --expose-gc --import tsx bench/groups.ts
 * // Smoke run with small sizes:
 * //   node --expose-gc --import tsx bench/groups.ts --quick
 * // One group only (`churn` = scenarios 1 and 4, `fanout` = scenarios 2 and 3):
 * //   node --expose-gc --import tsx bench/groups.ts --only=fanout
 */
import os from 'node:os'
import { CHURN_SIZES, CHURN_SIZES_QUICK, churnScenarios } from './groups-churn.js'
import { FANOUT_SIZES, FANOUT_SIZES_QUICK, fanoutScenarios } from './groups-fanout.js'
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

let args: BenchArgs
try {
  args = parseArgs(process.argv.slice(2))
} catch (error) {
  console.error((error as Error).message)
  process.exit(2)
}
const sizes = {
  churn: args.quick ? CHURN_SIZES_QUICK : CHURN_SIZES,
  fanout: args.quick ? FANOUT_SIZES_QUICK : FANOUT_SIZES,
}
const scenarios: [string, () => Promise<Row[]>][] = [
  ['churn', () => churnScenarios(sizes.churn)],
  ['fanout', () => fanoutScenarios(sizes.fanout)],
]

const host = machine()
console.log(
  `groups benchmark${args.quick ? ' (--quick)' : ''}: ${host['cpu']}, ${host['cores']} cores, ` +
    `node ${host['node']}, ${host['platform']}, heap limit ${host['heapLimitMiB']} MiB`,
)
if (!gcAvailable()) {
  console.log('global.gc is absent: heaps are not settled between scenarios (use --expose-gc)')
}

// Other programs on the machine slow both sides, but not always alike: record how busy it was.
const loadBefore = os.loadavg()[0] ?? 0
console.log(`load average (1 min) before: ${fmt(loadBefore)} on ${host['cores']} cores`)
const started = now()
const rows: Row[] = []
const durations: Record<string, number> = {}
for (const [name, run] of scenarios) {
  if (args.only.size > 0 && !args.only.has(name)) continue
  process.stdout.write(`running ${name}…`)
  const start = now()
  rows.push(...(await run()))
  durations[name] = msSince(start)
  console.log(` ${fmt(durations[name] / 1000)} s`)
  // Each scenario leaves a large dataspace behind: collect it so the next one starts clean.
  settledHeap()
}
const totalMs = msSince(started)
const loadAfter = os.loadavg()[0] ?? 0

console.log()
printTable(rows)
const path = writeJson(new URL('./results/groups.json', import.meta.url), {
  benchmark: 'groups',
  date: new Date().toISOString(),
  quick: args.quick,
  gc: gcAvailable(),
  machine: host,
  sizes,
  durationsMs: durations,
  totalMs,
  loadAverage: { before: loadBefore, after: loadAfter },
  rows,
})
console.log(
  `\n${rows.length} rows in ${fmt(totalMs / 1000)} s (load average ${fmt(loadBefore)} → ` +
    `${fmt(loadAfter)}); written to ${path}`,
)
