/**
 * The throughput half of bench/cluster.ts: commits/s of concurrent writers on the writer with 2
 * followers attached — polling only; with the doorbell; with the doorbell and each watching the
 * written kind — against the same writers with no follower, in interleaved rounds
 * (0 | 2 poll-only | 2, 2 watching | 0 | …) so that each round's baseline is the mean of the
 * 0-follower windows either side of it. Each window also records how busy the machine was and
 * what each follower did (CPU, rings heard, feed reads): on a small machine the writer, its
 * followers and PostgreSQL share the same cores.
 */
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import type { Dataspace } from '../src/index.js'
import { describe, FollowerProcess, spread, stamp } from './cluster-follower.js'
import type { Mode, Spread, Usage } from './cluster-follower.js'
import type { Row } from './lib.js'
import { fmt, median } from './lib.js'

export interface ThroughputSizes {
  /** Concurrent writers, each asserting in a loop. */
  readonly concurrency: number
  readonly throughputSeconds: number
  readonly rounds: number
}

/** One throughput window: commits/s, and how busy the machine and the writer's process were. */
interface Window {
  readonly rate: number
  /** Share of all the machine's cores busy (the writer, the followers, PostgreSQL, the rest). */
  readonly machineBusy: number
  /** CPU of this process (the writer) as a share of one core. */
  readonly writerCpu: number
  /** CPU of PostgreSQL's processes as a share of one core (NaN where /proc cannot tell). */
  readonly postgresCpu: number
}

interface Followed {
  readonly window: Window
  /** What each follower did during the window. */
  readonly followers: Usage[]
  readonly catchUpMs: number[]
  /** The followers' watchers' latencies, when they watched. */
  readonly latencies: number[]
  readonly resets: number
}

/** `getconf CLK_TCK`: the unit of /proc's CPU times, 100 on every Linux we run on. */
const CLOCK_TICKS = 100

/** Busy and total CPU time of the whole machine so far (every core), in ms. */
export function machineCpu(): { busy: number; total: number } {
  let busy = 0
  let total = 0
  for (const { times } of os.cpus()) {
    busy += times.user + times.nice + times.sys + times.irq
    total += times.user + times.nice + times.sys + times.irq + times.idle
  }
  return { busy, total }
}

/**
 * CPU seconds used so far by the local PostgreSQL's processes, read from /proc (Linux): every
 * `postgres` process, plus what the postmaster reaped from backends that have exited. Other
 * programs' queries count too. NaN when /proc is not there.
 */
export function postgresCpu(): number {
  try {
    let ticks = 0
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue
      let stat: string
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      } catch {
        continue // exited meanwhile
      }
      const close = stat.lastIndexOf(')')
      if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue
      // Fields after the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
      const fields = stat
        .slice(close + 2)
        .split(' ')
        .map(Number)
      ticks += (fields[11] ?? 0) + (fields[12] ?? 0) + (fields[13] ?? 0) + (fields[14] ?? 0)
    }
    return ticks / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** Commits/s of `concurrency` writers asserting for `throughputSeconds` (ids reused). */
export async function throughput(
  writer: Dataspace,
  kind: string,
  sizes: ThroughputSizes,
): Promise<Window> {
  const machineBefore = machineCpu()
  const postgresBefore = postgresCpu()
  const writerBefore = process.cpuUsage()
  const deadline = Date.now() + sizes.throughputSeconds * 1000
  let commits = 0
  await Promise.all(
    Array.from({ length: sizes.concurrency }, async (_, i) => {
      const proc = writer.process(`${kind}-${i}`)
      for (let n = 0; Date.now() < deadline; n++) {
        await proc.assert(kind, `w${i}-${n % 64}`, { t: stamp() })
        commits++
      }
      await proc.exit()
    }),
  )
  const writerUsed = process.cpuUsage(writerBefore)
  const machineAfter = machineCpu()
  return {
    rate: commits / sizes.throughputSeconds,
    machineBusy:
      (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total),
    writerCpu: (writerUsed.user + writerUsed.system) / 1e6 / sizes.throughputSeconds,
    postgresCpu: (postgresCpu() - postgresBefore) / sizes.throughputSeconds,
  }
}

function minus(a: Usage, b: Usage): Usage {
  return {
    cpu: a.cpu - b.cpu,
    rings: a.rings - b.rings,
    reads: a.reads - b.reads,
    commits: a.commits - b.commits,
  }
}

/** Throughput with the followers attached (watching the written kind or not). */
async function followed(
  writer: Dataspace,
  followers: readonly FollowerProcess[],
  watching: boolean,
  sizes: ThroughputSizes,
): Promise<Followed> {
  const kind = watching ? 'followed' : 'attached'
  if (watching) await Promise.all(followers.map((follower) => follower.watch(kind)))
  const before = await Promise.all(followers.map((follower) => follower.usage()))
  const window = await throughput(writer, kind, sizes)
  const after = await Promise.all(followers.map((follower) => follower.usage()))
  const used = after.map((usage, i) => minus(usage, before[i] as Usage))
  // The revision counts the writers' exits too: wait for all of it.
  const catchUpMs = await Promise.all(
    followers.map((follower) => follower.catchUp(writer.revision)),
  )
  if (!watching) return { window, followers: used, catchUpMs, latencies: [], resets: 0 }
  const commits = Math.round(window.rate * sizes.throughputSeconds)
  const seen = await Promise.all(followers.map((follower) => follower.collect(kind, commits, 2000)))
  return {
    window,
    followers: used,
    catchUpMs,
    latencies: seen.flatMap((s) => s.latencies),
    resets: seen.reduce((sum, s) => sum + s.resets, 0),
  }
}

const pct = (share: number): string => `${Math.round(share * 100)}%`

/** Which followers a window runs with. */
type Variant = 'poll only' | 'doorbell' | 'doorbell, watching'

function row(
  variant: Variant,
  runs: readonly Followed[],
  alone: readonly Window[],
  sizes: ThroughputSizes,
): Row {
  // Round r ran between alone[r] and alone[r + 1]: its baseline is their mean.
  const baselines = runs.map((_, r) => ((alone[r]?.rate ?? NaN) + (alone[r + 1]?.rate ?? NaN)) / 2)
  const ratios = runs.map((run, r) => run.window.rate / (baselines[r] as number))
  const ratio = median(ratios)
  const last = runs[runs.length - 1] as Followed
  const seconds = sizes.throughputSeconds
  const busy = (w: Window): string =>
    `machine ${pct(w.machineBusy)} busy, writer process ${pct(w.writerCpu)} of a core, ` +
    `PostgreSQL ${pct(w.postgresCpu)}`
  const work = (u: Usage): string =>
    `${pct(u.cpu / seconds)} of a core, ${fmt(u.rings / seconds)} rings/s, ` +
    `${fmt(u.reads / seconds)} feed reads/s (${fmt(u.commits / Math.max(1, u.reads), 1)} commits each)`
  const seen: Spread | undefined =
    variant === 'doorbell, watching' ? spread(runs.flatMap((run) => run.latencies)) : undefined
  const resets = runs.reduce((sum, run) => sum + run.resets, 0)
  return {
    group: 'throughput',
    scenario:
      `${sizes.concurrency} writers, 2 followers attached` +
      (variant === 'doorbell, watching'
        ? ', each watching the written kind'
        : variant === 'poll only'
          ? ', doorbell ignored (poll only), no watchers'
          : ', no watchers') +
      ': commits/s',
    value: Math.round(median(runs.map((run) => run.window.rate))),
    unit: 'commits/s',
    baseline: { label: '0 followers', value: Math.round(median(baselines)) },
    ratio,
    target: '≥ 0.9× (followers do not slow the writer)',
    met: ratio >= 0.9,
    note:
      `median of ${runs.length} round(s) of ${seconds} s (ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}; ` +
      `0 followers ${alone.map((w) => fmt(w.rate)).join(' / ')} commits/s); ` +
      `0 followers: ${busy(alone[0] as Window)}; with followers, last round: ${busy(last.window)}; ` +
      `each follower: ${last.followers.map(work).join('; ')}; caught up ` +
      `${last.catchUpMs.map((ms) => fmt(ms)).join(' / ')} ms after the window` +
      (seen === undefined ? '' : `; their watchers under this load: ${describe(seen)}`) +
      (resets > 0 ? `, ${resets} watch resets` : ''),
  }
}

/** The throughput rows; every follower it starts is stopped before it returns. */
export async function throughputRows(
  writer: Dataspace,
  schema: string,
  sizes: ThroughputSizes,
): Promise<Row[]> {
  const alone = [await throughput(writer, 'alone', sizes)]
  const runs = new Map<Variant, Followed[]>([
    ['poll only', []],
    ['doorbell', []],
    ['doorbell, watching', []],
  ])
  const run = (variant: Variant, result: Followed): void => void runs.get(variant)?.push(result)
  for (let round = 0; round < sizes.rounds; round++) {
    // Two followers that only poll: what being attached costs without the doorbell's reads.
    await withFollowers(schema, 'poll', async (followers) => {
      run('poll only', await followed(writer, followers, false, sizes))
    })
    await withFollowers(schema, 'doorbell', async (followers) => {
      run('doorbell', await followed(writer, followers, false, sizes))
      run('doorbell, watching', await followed(writer, followers, true, sizes))
    })
    alone.push(await throughput(writer, 'alone', sizes))
  }
  return [...runs].map(([variant, results]) => row(variant, results, alone, sizes))
}

/** Runs `body` with two follower children, stopped afterwards whatever happens. */
async function withFollowers(
  schema: string,
  mode: Mode,
  body: (followers: readonly FollowerProcess[]) => Promise<void>,
): Promise<void> {
  const followers: FollowerProcess[] = []
  try {
    followers.push(await FollowerProcess.start(schema, mode))
    followers.push(await FollowerProcess.start(schema, mode))
    await body(followers)
  } finally {
    await Promise.all(followers.map((follower) => follower.stop()))
  }
}
