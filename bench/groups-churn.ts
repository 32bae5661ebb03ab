/**
 * Scenarios 1 and 4 of the groups benchmark: join+leave throughput in a scope of 100k groups,
 * against the hand-written {@link MapGroups} baseline, and the same with group monitors open.
 *
 * Every op pair is `join(g, pid)` then `leave(g, pid)` on a random group and a random pid (seeded),
 * so the store keeps its size however many rounds run. The variants run interleaved, round by
 * round, each round in a rotated order, and every ratio is the median of per-round ratios: on a
 * shared machine the load drifts over a minute, and only figures taken close together compare.
 */
import { createDataspace } from '../src/index.js'
import type { GroupMonitor, ProcessGroups } from '../src/index.js'
import { below, MapGroups } from './groups-baseline.js'
import { prng } from './lib.js'
import type { Row } from './lib.js'
import { fmt, median, msSince, now, settledHeap, turn } from './lib.js'

/** Sizes of scenarios 1 and 4. */
export interface ChurnSizes {
  readonly groups: number
  /** Processes the members are drawn from. */
  readonly processes: number
  readonly rounds: number
  /** Ops (joins + leaves) per variant per round. */
  readonly ops: number
}

/** Sizes of a full run. */
export const CHURN_SIZES: ChurnSizes = { groups: 100_000, processes: 1000, rounds: 7, ops: 20_000 }
/** Sizes of a `--quick` smoke run. */
export const CHURN_SIZES_QUICK: ChurnSizes = {
  groups: 10_000,
  processes: 100,
  rounds: 3,
  ops: 4_000,
}

/** What the timed loop calls: `ds.groups()` and the baseline alike. */
interface ChurnTarget {
  join(group: string, pid: string): Promise<unknown>
  leave(group: string, pid: string): Promise<unknown>
}

interface Variant {
  readonly name: string
  readonly target: ChurnTarget
  /** Every op on this one group instead of a random one. */
  readonly hot?: string
  /** Untimed: opens monitors; returns what closes them and reports what they saw. */
  readonly open?: () => () => Promise<string | undefined>
  /** Fraction of the round's ops this variant runs: slow variants would otherwise fill the run. */
  readonly share?: number
}

const groupName = (n: number): string => `g-${n}`
const HOT = 'hot'
/** Monitor counts of the "unrelated groups" variants: 100 as asked, 1000 to show the slope. */
const UNRELATED = [100, 1000] as const

/** Times `pairs` join+leave pairs; returns ops (2 per pair) per second. */
async function churn(
  target: ChurnTarget,
  groups: readonly string[],
  pids: readonly string[],
): Promise<number> {
  const start = now()
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i] as string
    const pid = pids[i] as string
    await target.join(group, pid)
    await target.leave(group, pid)
  }
  return (2 * groups.length) / (msSince(start) / 1000)
}

/** Opens `count` monitors on groups no op touches; nothing reaches them, so none is drained. */
function unrelated(groups: ProcessGroups, count: number): () => () => Promise<undefined> {
  return () => {
    const monitors: GroupMonitor[] = []
    for (let i = 0; i < count; i++) monitors.push(groups.monitor(`idle-${i % 100}`))
    return async () => {
      for (const monitor of monitors) monitor.close()
      return undefined
    }
  }
}

/** One monitor on the hot group, drained by a consumer as an application would run it. */
function watching(groups: ProcessGroups, pairs: number): () => () => Promise<string | undefined> {
  return () => {
    const monitor = groups.monitor(HOT)
    const seen = { join: 0, leave: 0, reset: 0 }
    const consumer = (async () => {
      for await (const event of monitor) {
        if (event.type === 'join') seen.join += event.pids.length
        else if (event.type === 'leave') seen.leave += event.pids.length
        else if (event.type === 'reset') seen.reset++
      }
    })()
    return async () => {
      await turn()
      monitor.close()
      await consumer
      if (seen.join === pairs && seen.leave === pairs && seen.reset === 0) return undefined
      return `monitor saw ${seen.join} joins, ${seen.leave} leaves, ${seen.reset} resets (expected ${pairs} each, 0 resets)`
    }
  }
}

/** Runs scenarios 1 and 4 and returns their rows. */
export async function churnScenarios(sizes: ChurnSizes): Promise<Row[]> {
  const ds = createDataspace()
  const groups = ds.groups()
  const baseline = new MapGroups()
  const pids: string[] = []
  for (let i = 0; i < sizes.processes; i++) pids.push(ds.process(`member-${i}`).id)
  const random = prng(0x9e3779b9)
  // Setup goes through the same public API as the timed ops: one commit per join.
  const start = now()
  for (let n = 0; n < sizes.groups; n++) await groups.join(groupName(n), pids[n % pids.length]!)
  const populateMs = msSince(start)
  for (let n = 0; n < sizes.groups; n++) await baseline.join(groupName(n), pids[n % pids.length]!)
  for (let i = 0; i < 100; i++) await groups.join(`idle-${i}`, pids[i % pids.length]!)
  await groups.join(HOT, pids[0]!)
  const pairs = sizes.ops / 2
  const variants: Variant[] = [
    { name: 'baseline', target: baseline },
    { name: '0 monitors', target: groups },
    ...UNRELATED.map((count) => ({
      name: `${count} monitors, unrelated groups`,
      target: groups,
      open: unrelated(groups, count),
      share: 100 / count,
    })),
    { name: 'one group, 0 monitors', target: groups, hot: HOT },
    { name: 'one group, 1 monitor on it', target: groups, hot: HOT, open: watching(groups, pairs) },
  ]
  const results = new Map<string, number[]>(variants.map((variant) => [variant.name, []]))
  const problems: string[] = []
  settledHeap()
  for (let round = 0; round < sizes.rounds; round++) {
    const opGroups: string[] = []
    const opPids: string[] = []
    for (let i = 0; i < pairs; i++) {
      opGroups.push(groupName(below(random, sizes.groups)))
      opPids.push(pids[below(random, pids.length)]!)
    }
    const hotGroups = opGroups.map(() => HOT)
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(round + k) % variants.length]!
      const close = variant.open?.()
      const take = Math.ceil(pairs * (variant.share ?? 1))
      const opsPerSecond = await churn(
        variant.target,
        (variant.hot === undefined ? opGroups : hotGroups).slice(0, take),
        opPids.slice(0, take),
      )
      const problem = await close?.()
      if (problem !== undefined) problems.push(`round ${round}: ${problem}`)
      results.get(variant.name)!.push(opsPerSecond)
    }
  }
  const checks = await check(groups, baseline, sizes.groups)
  await ds.close()
  return rows(results, sizes, populateMs, [...problems, ...checks])
}

/** The ops left the groups as they were: every op pair undid itself on both sides. */
async function check(groups: ProcessGroups, baseline: MapGroups, count: number): Promise<string[]> {
  const problems: string[] = []
  for (const n of [0, Math.floor(count / 2), count - 1]) {
    const [ours, theirs] = [
      await groups.members(groupName(n)),
      await baseline.members(groupName(n)),
    ]
    if (ours.join() !== theirs.join() || ours.length !== 1)
      problems.push(`group ${groupName(n)} has ${ours.length} members, baseline ${theirs.length}`)
  }
  if ((await groups.members(HOT)).length !== 1)
    problems.push(`group ${HOT} did not return to 1 member`)
  return problems
}

function rows(
  results: ReadonlyMap<string, readonly number[]>,
  sizes: ChurnSizes,
  populateMs: number,
  problems: readonly string[],
): Row[] {
  const of = (name: string): readonly number[] => results.get(name) ?? []
  /** Median of per-round ratios of `a` over `b` (both ops/s, so > 1 means `a` is faster). */
  const ratio = (a: string, b: string): number =>
    median(of(a).map((value, round) => value / (of(b)[round] ?? NaN)))
  const opsOf = (name: string): number => median(of(name))
  const k = `${fmt(sizes.groups / 1000)}k`
  const perOp = (name: string): string => `${fmt(1e6 / opsOf(name))} µs/op`
  const problemNote = problems.map((p) => `PROBLEM: ${p}`)
  const core = ratio('0 monitors', 'baseline')
  const rowsOut: Row[] = [
    {
      group: 'groups',
      scenario: `join+leave, ${k} groups (1 member each, ${fmt(sizes.processes)} processes)`,
      value: opsOf('0 monitors'),
      unit: 'ops/s (p50)',
      baseline: { label: 'Map<group, Map<pid, n>>', value: opsOf('baseline') },
      ratio: core,
      target: 'within 20× of Map',
      met: core >= 1 / 20 && problems.length === 0,
      note: [
        `${fmt(1 / core, 1)}× slower than the Map`,
        `${perOp('0 monitors')} vs ${perOp('baseline')}`,
        `populating ${k} groups by single joins took ${fmt(populateMs)} ms (${fmt(sizes.groups / (populateMs / 1000))} joins/s)`,
        ...problemNote,
      ].join('; '),
    },
  ]
  for (const count of UNRELATED) {
    const name = `${count} monitors, unrelated groups`
    const r = ratio(name, '0 monitors')
    rowsOut.push({
      group: 'groups',
      scenario: `join+leave, ${count} monitor()s open on unrelated groups`,
      value: opsOf(name),
      unit: 'ops/s (p50)',
      baseline: { label: '0 monitors', value: opsOf('0 monitors') },
      ratio: r,
      target: '≈ 0 monitors (≥ 0.9×)',
      met: r >= 0.9,
      note: `${perOp(name)}; cost per monitor per op ≈ ${fmt((1e9 / opsOf(name) - 1e9 / opsOf('0 monitors')) / count, 1)} ns`,
    })
  }
  const hotRatio = ratio('one group, 1 monitor on it', 'one group, 0 monitors')
  rowsOut.push(
    {
      group: 'groups',
      scenario: 'join+leave, all on one group, 0 monitors',
      value: opsOf('one group, 0 monitors'),
      unit: 'ops/s (p50)',
      baseline: { label: 'random groups', value: opsOf('0 monitors') },
      ratio: ratio('one group, 0 monitors', '0 monitors'),
      target: '—',
      note: 'the reference for the next row',
    },
    {
      group: 'groups',
      scenario: 'join+leave, 1 monitor on the changed group (drained)',
      value: opsOf('one group, 1 monitor on it'),
      unit: 'ops/s (p50)',
      baseline: { label: 'one group, 0 monitors', value: opsOf('one group, 0 monitors') },
      ratio: hotRatio,
      target: 'one event per op',
      met: problems.every((p) => !p.includes('monitor saw')),
      note: `${perOp('one group, 1 monitor on it')}; each op is one commit and one join/leave event, consumed by a for-await loop`,
    },
  )
  return rowsOut
}
