/**
 * Shared helpers for the benchmark programs: timing, percentiles, garbage collection, the result
 * table and the JSON file. Benchmarks are programs, never tests (docs/performance.md): every
 * figure is printed next to a baseline measured in the same run, so a slow machine slows both
 * sides alike.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import os from 'node:os'
import v8 from 'node:v8'
import type { ChildProcess } from 'node:child_process'

/** One line of the result table (and one entry of the JSON file). */
export interface Row {
  /** Scenario group, e.g. `asserts`, `list`, `exit`, `memory`. */
  readonly group: string
  readonly scenario: string
  /** `null` when the figure could not be measured (e.g. memory without `--expose-gc`). */
  readonly value: number | null
  readonly unit: string
  /** What the figure is compared against, measured in the same run. */
  readonly baseline: { readonly label: string; readonly value: number | null } | null
  /**
   * How many times better than the baseline: `value / baseline` for throughputs,
   * `baseline / value` for times (a speed-up); `null` without a baseline.
   */
  readonly ratio: number | null
  /** The target, in words; not asserted. */
  readonly target: string
  /** Whether the target is met, when it can be judged mechanically. */
  readonly met?: boolean
  readonly note?: string
}

/** Nanoseconds from a monotonic clock: wall-clock adjustments must not skew timings. */
export function now(): bigint {
  return process.hrtime.bigint()
}

/** Milliseconds since `start` (a value of {@link now}). */
export function msSince(start: bigint): number {
  return Number(now() - start) / 1e6
}

/** Runs `fn` once and returns how long it took in milliseconds. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = now()
  await fn()
  return msSince(start)
}

/** The `p`-th percentile (0–100) of `samples`, by nearest rank; NaN when empty. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** The median: robust against one sample hit by a major GC. */
export function median(samples: readonly number[]): number {
  return percentile(samples, 50)
}

/** Whether the process was started with `--expose-gc`. */
export function gcAvailable(): boolean {
  return typeof globalThis.gc === 'function'
}

/**
 * Collects garbage until the heap stops shrinking (one pass can leave weak structures and
 * finalizers behind), then returns `heapUsed`. Returns `null` without `--expose-gc`.
 */
export function settledHeap(): number | null {
  const gc = globalThis.gc
  if (typeof gc !== 'function') return null
  let previous = Infinity
  for (let i = 0; i < 6; i++) {
    void gc()
    const used = process.memoryUsage().heapUsed
    if (used >= previous - 1024) return used
    previous = used
  }
  return process.memoryUsage().heapUsed
}

/** Yields to the event loop once, so that queued microtasks (watch consumers) run to the end. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * Opens `count` things `batch` at a time (a burst of thousands of connects would time out),
 * stopping between batches once `deadline` (ms since the epoch) has passed.
 */
export async function openBatched<T>(
  count: number,
  batch: number,
  open: (i: number) => Promise<T>,
  deadline = Infinity,
): Promise<T[]> {
  const out: T[] = []
  for (let from = 0; from < count && Date.now() < deadline; from += batch) {
    const size = Math.min(batch, count - from)
    out.push(...(await Promise.all(Array.from({ length: size }, (_, i) => open(from + i)))))
  }
  return out
}

/** The machine the figures come from: they mean nothing without it. */
export function machine(): Record<string, string | number> {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    heapLimitMiB: Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20),
  }
}

/** Formats a number for the table: thousands separators, at most `digits` decimals. */
export function fmt(value: number | null, digits = 2): string {
  if (value === null || Number.isNaN(value)) return 'n/a'
  const abs = Math.abs(value)
  const decimals = abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits
  return value.toLocaleString('en-US', { maximumFractionDigits: decimals })
}

/** Prints the rows as an aligned text table (console.table quotes strings and wraps badly). */
export function printTable(rows: readonly Row[]): void {
  const header = ['scenario', 'value', 'unit', 'baseline', 'ratio', 'target', 'met']
  const lines = rows.map((row) => [
    `${row.group}: ${row.scenario}`,
    fmt(row.value),
    row.unit,
    row.baseline === null ? '—' : `${row.baseline.label} = ${fmt(row.baseline.value)}`,
    row.ratio === null ? '—' : `${fmt(row.ratio)}×`,
    row.target,
    row.met === undefined ? '—' : row.met ? 'yes' : 'NO',
  ])
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)),
  )
  // Numbers align right, words left, as in any printed table.
  const numeric = new Set([1, 4])
  const render = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? 0
        return numeric.has(column) ? cell.padStart(width) : cell.padEnd(width)
      })
      .join('  ')
      .trimEnd()
  console.log(render(header))
  console.log(render(widths.map((width) => '-'.repeat(width))))
  for (const line of lines) console.log(render(line))
  for (const row of rows) {
    if (row.note !== undefined) console.log(`  * ${row.group}: ${row.scenario}: ${row.note}`)
  }
}

/** Writes `payload` as pretty JSON to `url` (relative to the caller's module), creating folders. */
export function writeJson(url: URL, payload: unknown): string {
  const path = fileURLToPath(url)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(payload, null, 2)}\n`)
  return path
}

/** Command-line flags shared by every benchmark program. */
export interface BenchArgs {
  /** Smaller sizes, for smoke runs (CI, a quick check after a change). */
  readonly quick: boolean
  /** Only these scenario groups (`--only=asserts,list`); every group when empty. */
  readonly only: ReadonlySet<string>
}

/** Parses `--quick` and `--only=a,b`; anything else is an error, so typos do not go unnoticed. */
export function parseArgs(argv: readonly string[]): BenchArgs {
  let quick = false
  const only = new Set<string>()
  for (const arg of argv) {
    if (arg === '--quick') quick = true
    else if (arg.startsWith('--only=')) for (const name of arg.slice(7).split(',')) only.add(name)
    else throw new Error(`unknown argument ${arg}: expected --quick or --only=<group,…>`)
  }
  return { quick, only }
}

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same operations on both sides and
 * in every run, so runs can be compared.
 */
export function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Asks a bench child process to stop (`message` over IPC), then kills it by its pid if it has
 * not exited within 5 s; resolves once it exited.
 */
export async function stopChild(
  child: ChildProcess,
  exited: Promise<unknown>,
  message: unknown,
): Promise<void> {
  const pid = child.pid
  if (child.exitCode !== null || pid === undefined) return
  child.send(message as object)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>(
    (resolve) => (timer = setTimeout(resolve, 5000, 'timeout')),
  )
  const outcome = await Promise.race([exited, timeout])
  clearTimeout(timer)
  if (outcome === 'timeout') {
    process.kill(pid, 'SIGKILL')
    await exited
  }
}
