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
import { CHURN_SIZES, CHURN_SIZES_QUICK, churnScenarios } from './groups-churn.js'
import { FANOUT_SIZES, FANOUT_SIZES_QUICK, fanoutScenarios } from './groups-fanout.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'

const args = benchArgs()
const sizes = {
  churn: args.quick ? CHURN_SIZES_QUICK : CHURN_SIZES,
  fanout: args.quick ? FANOUT_SIZES_QUICK : FANOUT_SIZES,
}
const groups: ScenarioGroup[] = [
  ['churn', () => churnScenarios(sizes.churn)],
  ['fanout', () => fanoutScenarios(sizes.fanout)],
]

await runBenchmark('groups', args, sizes, groups)
