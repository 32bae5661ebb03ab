/**
 * Scenario 3: a process owning many records exits. Everything it owns must go in ONE commit
 * (docs/design.md, "The model"), so the figure is the time from `exit()` to its promise
 * resolving, checked against one revision step. The baseline is the same retraction written by
 * hand: one `transact` of retract ops over the same records, in the same run.
 */
import { createDataspace } from '../src/index.js'
import type { Dataspace, Op, Process } from '../src/index.js'
import { load, paddedId } from './fixtures.js'
import type { Row } from './lib.js'
import { fmt, median, settledHeap, timeMs, turn } from './lib.js'

const KIND = 'bench.owned'

/** Sizes of scenario 3. */
export interface ExitSizes {
  /** Records the exiting process owns. */
  readonly records: number
  readonly reps: number
}

/** Sizes of a full run. */
export const EXIT_SIZES: ExitSizes = { records: 100_000, reps: 3 }
/** Sizes of a `--quick` smoke run. */
export const EXIT_SIZES_QUICK: ExitSizes = { records: 10_000, reps: 2 }

const id = (n: number): string => paddedId('o-', n)
/** Bystanders' records share the kind, so that an exit must pick its own out of a larger store. */
const OTHERS_FACTOR = 3

async function loaded(records: number, others: number): Promise<{ ds: Dataspace; proc: Process }> {
  const ds = createDataspace()
  const proc = ds.process('owner')
  await load(proc, [KIND], records, id, (n) => ({ slot: n, ready: true }))
  if (others > 0) {
    const bystander = ds.process('bystander')
    await load(
      bystander,
      [KIND],
      others,
      (n) => paddedId('b-', n),
      (n) => ({ slot: n }),
    )
  }
  return { ds, proc }
}

interface ExitRun {
  readonly ms: number
  readonly problem: string | undefined
  readonly events: string
}

/** One exit, optionally among other owners' records or with a watcher of the kind attached. */
async function timeExit(records: number, others: number, watched: boolean): Promise<ExitRun> {
  const { ds, proc } = await loaded(records, others)
  const seen = { retracted: 0, reset: 0, snapshot: 0 }
  let watchError: string | undefined
  if (watched) {
    const watch = ds.watch(KIND, { snapshot: false })
    ;(async () => {
      for await (const event of watch) {
        if (event.type === 'retracted') seen.retracted++
        else if (event.type === 'reset') seen.reset++
        else if (event.type === 'snapshot') seen.snapshot++
      }
    })().catch((error: unknown) => {
      watchError = String(error)
    })
  }
  const before = ds.revision
  // Earlier loads left garbage: a major GC inside the timed commit would not be the exit's cost.
  settledHeap()
  const ms = await timeMs(() => proc.exit())
  const after = ds.revision
  // Cheap checks: an owner-indexed list, and the kind's size as the planner counts it.
  const left = (await ds.list(KIND, { owner: proc.id, limit: 1 })).items.length
  const remaining = (await ds.explain(KIND)).candidates
  await turn()
  const problems: string[] = []
  if (after !== before + 1) problems.push(`revision advanced by ${after - before}, not 1`)
  if (left !== 0) problems.push('records of the exited owner are left')
  if (watchError !== undefined) problems.push(`the watcher failed: ${watchError}`)
  if (remaining !== others) problems.push(`${remaining} records remain, expected ${others}`)
  const events = `watcher saw ${seen.retracted} retracted, ${seen.reset} reset, ${seen.snapshot} snapshot`
  return { ms, problem: problems.length > 0 ? problems.join('; ') : undefined, events }
}

/** The baseline: the owner retracts everything itself in one transaction. */
async function timeRetractAll(records: number): Promise<number> {
  const { proc } = await loaded(records, 0)
  const then: Op[] = []
  for (let n = 0; n < records; n++) then.push({ op: 'retract', kind: KIND, id: id(n) })
  settledHeap()
  return timeMs(() => proc.transact({ then }))
}

function notes(
  run: { ms: number; problems: readonly string[] },
  records: number,
  extra: string[],
): string {
  return [
    `${fmt((run.ms * 1e6) / records)} ns/record`,
    ...(run.problems.length === 0
      ? ['revision advanced by exactly 1, nothing of the owner left']
      : []),
    ...extra,
    ...run.problems.map((p) => `PROBLEM: ${p}`),
  ].join('; ')
}

/** Runs scenario 3 and returns its rows. */
export async function exitScenarios(sizes: ExitSizes): Promise<Row[]> {
  const alone: ExitRun[] = []
  const among: ExitRun[] = []
  const baselines: number[] = []
  const others = sizes.records * OTHERS_FACTOR
  for (let rep = 0; rep < sizes.reps; rep++) {
    alone.push(await timeExit(sizes.records, 0, false))
    among.push(await timeExit(sizes.records, others, false))
    baselines.push(await timeRetractAll(sizes.records))
  }
  const watched = await timeExit(sizes.records, 0, true)
  const problemsOf = (runs: readonly ExitRun[]): string[] =>
    runs.flatMap((run) => (run.problem === undefined ? [] : [run.problem]))
  const exitMs = median(alone.map((run) => run.ms))
  const amongMs = median(among.map((run) => run.ms))
  const baseline = median(baselines)
  const aloneProblems = problemsOf(alone)
  const amongProblems = problemsOf(among)
  const watchedProblems = problemsOf([watched])
  const owned = fmt(sizes.records)
  return [
    {
      group: 'exit',
      scenario: `exit of a process owning ${owned} records (all of the kind)`,
      value: exitMs,
      unit: 'ms (p50)',
      baseline: { label: `transact of ${fmt(sizes.records / 1000)}k retracts`, value: baseline },
      ratio: baseline / exitMs,
      target: '< 100 ms, 1 revision',
      met: exitMs < 100 && aloneProblems.length === 0,
      note: notes({ ms: exitMs, problems: aloneProblems }, sizes.records, []),
    },
    {
      group: 'exit',
      scenario: `same, ${owned} among ${fmt(others)} others' records`,
      value: amongMs,
      unit: 'ms (p50)',
      baseline: { label: 'exit, all of the kind', value: exitMs },
      ratio: exitMs / amongMs,
      target: '< 100 ms, 1 revision',
      met: amongMs < 100 && amongProblems.length === 0,
      note: notes({ ms: amongMs, problems: amongProblems }, sizes.records, []),
    },
    {
      group: 'exit',
      scenario: `same as the first, with 1 watcher of the kind`,
      value: watched.ms,
      unit: 'ms',
      baseline: { label: 'exit without watcher', value: exitMs },
      ratio: exitMs / watched.ms,
      target: '< 100 ms, 1 revision',
      met: watched.ms < 100 && watchedProblems.length === 0,
      note: notes({ ms: watched.ms, problems: watchedProblems }, sizes.records, [watched.events]),
    },
  ]
}
