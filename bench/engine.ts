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
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'
import { LIST_SIZES, LIST_SIZES_QUICK, listScenarios } from './list.js'
import { MEMORY_SIZES, MEMORY_SIZES_QUICK, memoryScenarios } from './memory.js'

const args = benchArgs()
const sizes = {
  asserts: args.quick ? ASSERT_SIZES_QUICK : ASSERT_SIZES,
  list: args.quick ? LIST_SIZES_QUICK : LIST_SIZES,
  exit: args.quick ? EXIT_SIZES_QUICK : EXIT_SIZES,
  memory: args.quick ? MEMORY_SIZES_QUICK : MEMORY_SIZES,
}
// Memory runs first, on the cleanest heap; the rest in the order of docs/performance.md's targets.
const groups: ScenarioGroup[] = [
  ['memory', () => memoryScenarios(sizes.memory)],
  ['asserts', () => assertScenarios(sizes.asserts)],
  ['list', () => listScenarios(sizes.list)],
  ['exit', () => exitScenarios(sizes.exit)],
]

await runBenchmark('engine', args, sizes, groups)
