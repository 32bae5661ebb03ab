import os from 'node:os'
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

/** A named group of scenarios, run as a unit (`--only=<name>` selects groups). */
export type ScenarioGroup = readonly [name: string, run: () => Promise<Row[]>]

/** Parses the command line (`--quick`, `--only=…`), exiting with a usage error on bad input. */
export function benchArgs(): BenchArgs {
  try {
    return parseArgs(process.argv.slice(2))
  } catch (error) {
    console.error((error as Error).message)
    process.exit(2)
  }
}

/**
 * The driver every benchmark program shares: prints the machine and how busy it is, runs the
 * selected groups with a settled heap between them, prints the table and writes
 * `bench/results/<name>.json`.
 */
export async function runBenchmark(
  name: string,
  args: BenchArgs,
  sizes: Readonly<Record<string, unknown>>,
  groups: readonly ScenarioGroup[],
): Promise<void> {
  const host = machine()
  console.log(
    `${name} benchmark${args.quick ? ' (--quick)' : ''}: ${host['cpu']}, ${host['cores']} cores, ` +
      `node ${host['node']}, ${host['platform']}, heap limit ${host['heapLimitMiB']} MiB`,
  )
  if (!gcAvailable()) {
    console.log(
      'global.gc is absent: memory figures are skipped and heaps are not settled (run with node --expose-gc)',
    )
  }
  // Other programs on the machine slow both sides, but not always alike: record how busy it was.
  const loadBefore = os.loadavg()[0] ?? 0
  console.log(`load average (1 min) before: ${fmt(loadBefore)} on ${host['cores']} cores`)
  const started = now()
  const rows: Row[] = []
  const durations: Record<string, number> = {}
  for (const [group, run] of groups) {
    if (args.only.size > 0 && !args.only.has(group)) continue
    process.stdout.write(`running ${group}…`)
    const start = now()
    rows.push(...(await run()))
    durations[group] = msSince(start)
    console.log(` ${fmt(durations[group] / 1000)} s`)
    // Each group leaves a large dataspace behind: collect it so the next group starts clean.
    settledHeap()
  }
  const totalMs = msSince(started)
  const loadAfter = os.loadavg()[0] ?? 0
  console.log()
  printTable(rows)
  const path = writeJson(new URL(`./results/${name}.json`, import.meta.url), {
    benchmark: name,
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
}
