/**
 * Scenarios 2 and 3 of the groups benchmark: `members()` of a 10k-member group and `broadcast()`
 * to it, against the hand-written {@link MapGroups} baseline. Each member also sits in a group of
 * its own, so the scope holds more memberships than the big group and the planner has to pick
 * the group index rather than scan the scope.
 *
 * Dataspace and baseline calls alternate one by one, so both see the same machine load.
 */
import { createDataspace, GROUP_MEMBER_KIND } from '../src/index.js'
import type { Process } from '../src/index.js'
import { MapGroups } from './groups-baseline.js'
import type { Row } from './lib.js'
import { fmt, median, msSince, now, percentile, settledHeap } from './lib.js'

/** Sizes of scenarios 2 and 3. */
export interface FanoutSizes {
  /** Distinct members of the big group, each a `ds.process`. */
  readonly members: number
  /** Timed `members()` calls per side. */
  readonly calls: number
  /** Timed broadcasts per side. */
  readonly broadcasts: number
  /** Broadcasts between two drains: each mailbox holds at most this many messages. */
  readonly batch: number
}

/** Sizes of a full run. */
export const FANOUT_SIZES: FanoutSizes = { members: 10_000, calls: 200, broadcasts: 100, batch: 10 }
/** Sizes of a `--quick` smoke run. */
export const FANOUT_SIZES_QUICK: FanoutSizes = {
  members: 2_000,
  calls: 50,
  broadcasts: 20,
  batch: 10,
}

const BIG = 'big'

/** Microseconds one call of `fn` takes. */
async function timeUs(fn: () => Promise<unknown>): Promise<number> {
  const start = now()
  await fn()
  return msSince(start) * 1000
}

/** Runs scenarios 2 and 3 and returns their rows. */
export async function fanoutScenarios(sizes: FanoutSizes): Promise<Row[]> {
  const ds = createDataspace()
  const groups = ds.groups()
  const baseline = new MapGroups()
  const procs: Process[] = []
  for (let i = 0; i < sizes.members; i++) procs.push(ds.process(`member-${i}`))
  const pids = procs.map((proc) => proc.id)
  await groups.join(BIG, pids)
  for (const pid of pids) {
    await groups.join(`own-${pid}`, pid)
    baseline.spawn(pid)
    await baseline.join(BIG, pid)
  }
  const sender = ds.process('sender')
  const plan = await ds.explain(GROUP_MEMBER_KIND, { fields: { scope: 'default', group: BIG } })
  const problems: string[] = []
  settledHeap()

  // Scenario 2: members().
  const ours: number[] = []
  const theirs: number[] = []
  for (let i = 0; i < sizes.calls; i++) {
    let got = 0
    ours.push(await timeUs(async () => (got = (await groups.members(BIG)).length)))
    if (got !== sizes.members) problems.push(`members() returned ${got}, not ${sizes.members}`)
    theirs.push(await timeUs(() => baseline.members(BIG)))
  }

  // Scenario 3: broadcast(); mailboxes are drained, untimed, every `batch` broadcasts.
  const sent: number[] = []
  const sentBaseline: number[] = []
  for (let done = 0; done < sizes.broadcasts; done += sizes.batch) {
    const batch = Math.min(sizes.batch, sizes.broadcasts - done)
    for (let i = 0; i < batch; i++) {
      let delivered = 0
      const message = { seq: done + i }
      sent.push(
        await timeUs(async () => (delivered = await groups.broadcast(sender, BIG, message))),
      )
      if (delivered !== sizes.members) problems.push(`broadcast delivered to ${delivered}`)
      sentBaseline.push(await timeUs(() => baseline.broadcast(sender.id, BIG, message)))
    }
    for (const proc of procs) for (let i = 0; i < batch; i++) await proc.messages.next()
    baseline.drain()
  }
  const dropped = ds.stats.droppedMailboxMessages + baseline.dropped
  if (dropped > 0) problems.push(`${dropped} messages dropped by full mailboxes`)
  await ds.close()
  return rows(sizes, { ours, theirs, sent, sentBaseline }, plan.index, problems)
}

interface Samples {
  readonly ours: readonly number[]
  readonly theirs: readonly number[]
  readonly sent: readonly number[]
  readonly sentBaseline: readonly number[]
}

function rows(
  sizes: FanoutSizes,
  samples: Samples,
  index: string | null,
  problems: readonly string[],
): Row[] {
  const k = `${fmt(sizes.members / 1000)}k`
  const membersUs = median(samples.ours)
  const membersBaseline = median(samples.theirs)
  const sendUs = median(samples.sent)
  const sendBaseline = median(samples.sentBaseline)
  const p99 = (values: readonly number[]): string => fmt(percentile(values, 99))
  const problemNote = [...new Set(problems)].map((p) => `PROBLEM: ${p}`)
  return [
    {
      group: 'groups',
      scenario: `members() of a ${k}-member group (${fmt(sizes.calls)} calls)`,
      value: membersUs,
      unit: 'µs (p50)',
      baseline: { label: 'Map', value: membersBaseline },
      ratio: membersBaseline / membersUs,
      target: 'within 20× of Map',
      met: membersUs <= 20 * membersBaseline && problems.length === 0,
      note: [
        `p99 ${p99(samples.ours)} µs vs ${p99(samples.theirs)} µs`,
        `${fmt(membersUs / membersBaseline, 1)}× the Map's time`,
        `planner index: ${index ?? 'none (full scan)'}`,
        ...problemNote,
      ].join('; '),
    },
    {
      group: 'groups',
      scenario: `broadcast() to ${k} members (${fmt(sizes.broadcasts)} broadcasts)`,
      value: sendUs,
      unit: 'µs (p50)',
      baseline: { label: 'Map + arrays', value: sendBaseline },
      ratio: sendBaseline / sendUs,
      target: 'within 20× of Map',
      met: sendUs <= 20 * sendBaseline && problems.length === 0,
      note: [
        `p99 ${p99(samples.sent)} µs vs ${p99(samples.sentBaseline)} µs`,
        `${fmt(sendUs / sendBaseline, 1)}× the Map's time`,
        `mailboxes drained every ${sizes.batch} broadcasts, untimed`,
        ...problemNote,
      ].join('; '),
    },
    {
      group: 'groups',
      scenario: `broadcast() to ${k} members: delivery rate`,
      value: sizes.members / (sendUs / 1e6),
      unit: 'msgs/s (p50)',
      baseline: { label: 'Map + arrays', value: sizes.members / (sendBaseline / 1e6) },
      ratio: sendBaseline / sendUs,
      target: '—',
      note: 'the row above as a rate: one message to each distinct member per broadcast',
    },
  ]
}
