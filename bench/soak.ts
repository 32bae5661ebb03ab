/**
 * The memory soak (issue 10 item 6): a real server in a child process with a fixed V8 heap
 * limit, driven through the phases that used to exhaust it, with its heap sampled all along
 * from `/metrics` (`dataspace_heap_used_bytes`, what an operator would watch). It shows the
 * heap staying under its bound:
 *
 * 1. `idle`: the heap of the started server: the baseline every other figure is compared with.
 * 2. `overwrites`: one session overwrites one 1 MB record N times (10k). Before the history was
 *    bounded in bytes it kept every version, and the server ran out of heap in ~90 s.
 * 3. `sessions`: 10k WebSocket sessions, held open.
 * 4. `watches`: 100k watches (100 clients × 1000, on distinct ids), held open with the sessions.
 * 5. `budget`: one session writes distinct 1 MB records until the memory budget refuses one
 *    (`TooLarge`, limit `memoryBudgetBytes`): the heap when writes stop, against the limit.
 *    Then the session ends (its records go) and the heap is read again.
 *
 * The server child runs `node --max-old-space-size=<SOAK_HEAP_MIB, default 2048; 512 with --quick>` with the
 * default budget (half the heap limit); clients run in this process. Every phase has a time
 * limit, only 127.0.0.1 is used, and the child is ended by its pid. Prints a table and writes
 * `bench/results/soak.json`.
 *
 * @example
 * // Full run, a few minutes on two cores:
 * //   node --import tsx bench/soak.ts            (npm run bench:soak)
 * // Smoke run, under a minute:
 * //   node --import tsx bench/soak.ts --quick
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { connect } from '../src/client/index.js'
import type { DataspaceClient } from '../src/client/index.js'
import { createDataspace, TooLarge } from '../src/index.js'
import type { Watch } from '../src/index.js'
import { createServer } from '../src/server/index.js'
import type { Row } from './lib.js'
import { fmt, openBatched } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'

const MiB = 1024 * 1024
const KIND = 'soak.blob'
/** 1 MB of data: under the 1 MiB frame and body limits with the envelope. */
const RECORD_CHARS = 1_000_000
/** Per-session abuse limits would refuse one client's 1000 watches: raised, as in bench/server.ts. */
const SOAK_LIMITS = {
  maxCallsPerSecond: 1_000_000_000,
  callBurst: 1_000_000_000,
  maxStreamsPerSession: 1_000_000,
}

interface Sizes {
  readonly heapMiB: number
  readonly overwrites: number
  readonly sessions: number
  readonly watchClients: number
  readonly watchesPerClient: number
  /** In-flight writes per writer. */
  readonly window: number
  /** Each phase stops after this long, whatever it has done. */
  readonly phaseSeconds: number
}

function sizesFor(quick: boolean): Sizes {
  const env = (name: string, fallback: number): number => {
    const value = process.env[name]
    return value === undefined || value === '' ? fallback : Number(value)
  }
  return {
    heapMiB: env('SOAK_HEAP_MIB', quick ? 512 : 2048),
    overwrites: env('SOAK_OVERWRITES', quick ? 500 : 10_000),
    sessions: env('SOAK_SESSIONS', quick ? 1000 : 10_000),
    watchClients: env('SOAK_WATCH_CLIENTS', quick ? 10 : 100),
    watchesPerClient: env('SOAK_WATCHES', 1000),
    window: 4,
    phaseSeconds: env('SOAK_PHASE_SECONDS', quick ? 60 : 600),
  }
}

// ---------------------------------------------------------------------------------------------
// The server child: an embedded dataspace with default bounds, behind a server on 127.0.0.1.
// ---------------------------------------------------------------------------------------------

async function serverChild(): Promise<void> {
  const ds = createDataspace()
  const server = await createServer({
    ds,
    port: 0,
    limits: SOAK_LIMITS,
    logger: pino({ name: 'soak-server', level: 'warn' }, pino.destination(2)),
  })
  process.on('message', (message: { type: string }) => {
    if (message.type === 'stop') process.exit(0)
  })
  process.on('disconnect', () => process.exit(0))
  process.send?.({ type: 'ready', url: server.url })
}

/** The child as the parent sees it: started with a heap limit, sampled, ended by its pid. */
class ServerChild {
  readonly url: string
  readonly #child: ChildProcess
  readonly #exited: Promise<number | null>
  readonly samples: { at: number; heap: number }[] = []
  #timer: NodeJS.Timeout | undefined
  #peak = 0

  private constructor(child: ChildProcess, url: string, exited: Promise<number | null>) {
    this.#child = child
    this.url = url
    this.#exited = exited
  }

  static async start(heapMiB: number): Promise<ServerChild> {
    const child = fork(fileURLToPath(import.meta.url), [], {
      execArgv: [`--max-old-space-size=${heapMiB}`, '--import', 'tsx'],
      env: { ...process.env, SOAK_CHILD: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    const url = await new Promise<string>((resolve, reject) => {
      child.once('message', (m: { type: string; url: string }) => resolve(m.url))
      child.once('exit', (code) => reject(new Error(`server child exited early (${code})`)))
    })
    return new ServerChild(child, url, exited)
  }

  /** Whether the child is still running (a child out of heap dies). */
  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null
  }

  /** One scrape of `/metrics`: every unlabelled series and the memory parts. */
  async metrics(): Promise<Map<string, number>> {
    const text = await (await fetch(`${this.url}/metrics`)).text()
    const values = new Map<string, number>()
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || line === '') continue
      const space = line.lastIndexOf(' ')
      values.set(line.slice(0, space), Number(line.slice(space + 1)))
    }
    return values
  }

  async heap(): Promise<number> {
    const heap = (await this.metrics()).get('dataspace_heap_used_bytes') ?? NaN
    this.samples.push({ at: Date.now(), heap })
    if (heap > this.#peak) this.#peak = heap
    return heap
  }

  /** Samples the heap every `ms` until {@link peakSince} is read. */
  sample(ms = 250): void {
    this.#peak = 0
    this.#timer = setInterval(() => {
      this.heap().catch(() => undefined) // a child that died shows in `alive`
    }, ms)
  }

  /** The highest heap sampled since {@link sample}, and stops sampling. */
  async peakSince(): Promise<number> {
    clearInterval(this.#timer)
    if (this.alive) await this.heap()
    return this.#peak
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    const pid = this.#child.pid
    if (!this.alive || pid === undefined) return
    this.#child.send({ type: 'stop' })
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000))
    if ((await Promise.race([this.#exited, timeout])) === 'timeout') {
      process.kill(pid, 'SIGKILL')
      await this.#exited
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The phases.
// ---------------------------------------------------------------------------------------------

/** Runs `count` calls of `op`, `window` at a time, stopping at `deadline` (ms since epoch). */
async function pipelined(
  count: number,
  window: number,
  deadline: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0
  let done = 0
  const lane = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) {
      const i = next++
      await op(i)
      done++
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  return done
}

const mib = (bytes: number): number => bytes / MiB

async function soak(sizes: Sizes, details: Record<string, unknown>): Promise<Row[]> {
  const server = await ServerChild.start(sizes.heapMiB)
  const clients: DataspaceClient[] = []
  const watches: Watch[] = []
  const rows: Row[] = []
  const phaseEnd = (): number => Date.now() + sizes.phaseSeconds * 1000
  try {
    const first = await server.metrics()
    const limit = first.get('dataspace_heap_limit_bytes') ?? NaN
    const budget = first.get('dataspace_memory_budget_bytes') ?? NaN
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const idle = await server.heap()
    const base = { label: 'idle heap MiB', value: mib(idle) }
    const underLimit = (peak: number): boolean => server.alive && peak < limit
    const row = (scenario: string, peak: number, note: string): Row => ({
      group: 'soak',
      scenario,
      value: mib(peak),
      unit: 'MiB peak heap',
      baseline: base,
      ratio: peak / idle,
      target: `< heap limit ${fmt(mib(limit), 0)} MiB`,
      met: underLimit(peak),
      note,
    })

    /** Phases 3 and 4 end alike: the time to open, the peak, the gauge `dataspace_<gauge>`. */
    const heldOpen = async (
      phase: string,
      gauge: string,
      since: number,
      scenario: (count: number) => string,
    ): Promise<void> => {
      const seconds = (Date.now() - since) / 1000
      const peak = await server.peakSince()
      const count = (await server.metrics()).get(`dataspace_${gauge}`) ?? NaN
      details[phase] = { [gauge]: count, seconds }
      const settled = mib(await server.heap())
      rows.push(
        row(scenario(count), peak, `opened in ${fmt(seconds)} s; settled at ${fmt(settled)} MiB`),
      )
    }

    // 2. One session overwrites one 1 MB record.
    const writer = await connect(server.url, { name: 'overwriter' })
    clients.push(writer)
    const body = 'x'.repeat(RECORD_CHARS)
    server.sample()
    let started = Date.now()
    const overwrites = await pipelined(sizes.overwrites, sizes.window, phaseEnd(), (i) =>
      writer.session.assert(KIND, 'one', { i, body }),
    )
    const overwriteSeconds = (Date.now() - started) / 1000
    const overwritePeak = await server.peakSince()
    const afterOverwrites = await server.metrics()
    const historyBytes = afterOverwrites.get('dataspace_memory_bytes{part="history"}') ?? NaN
    details['overwrites'] = { done: overwrites, seconds: overwriteSeconds, historyBytes }
    rows.push(
      row(
        `${fmt(overwrites)} overwrites of one 1 MB record`,
        overwritePeak,
        `${fmt(overwrites / overwriteSeconds)} writes/s; history holds ${fmt(mib(historyBytes))} ` +
          `MiB (≈ ${fmt(historyBytes / RECORD_CHARS, 0)} versions) where an unbounded one would ` +
          `hold ${fmt(overwrites)} MB; trimmed ` +
          `${fmt(afterOverwrites.get('dataspace_history_trimmed_commits_total') ?? NaN)} commits`,
      ),
    )

    // 3. Sessions, held open.
    server.sample()
    started = Date.now()
    clients.push(
      ...(await openBatched(
        sizes.sessions,
        100,
        (i) => connect(server.url, { name: `idle-${i}` }),
        phaseEnd(),
      )),
    )
    await heldOpen('sessions', 'sessions', started, (n) => `${fmt(n)} sessions`)

    // 4. Watches on distinct ids, each confirmed by its snapshot, held open with the sessions.
    server.sample()
    started = Date.now()
    const deadline = phaseEnd()
    await Promise.all(
      clients.slice(1, 1 + sizes.watchClients).map(async (client, c) => {
        const opened = Array.from({ length: sizes.watchesPerClient }, (_, i) =>
          client.watch(KIND, { id: `w-${c}-${i}` }),
        )
        watches.push(...opened)
        for (const watch of opened) {
          if (Date.now() > deadline) return
          const event = await watch.next()
          if (event.done === true || event.value.type !== 'snapshot') throw new Error('no snapshot')
        }
      }),
    )
    await heldOpen('watches', 'watchers', started, (n) => `${fmt(n)} watches (with the sessions)`)

    // 5. Distinct 1 MB records until the budget refuses one.
    const filler = await connect(server.url, { name: 'filler' })
    clients.push(filler)
    server.sample()
    let refused: TooLarge | undefined
    let accepted = 0
    const fillEnd = phaseEnd()
    for (let i = 0; refused === undefined && Date.now() < fillEnd; i++) {
      try {
        await filler.session.assert(KIND, `fill-${i}`, { body })
        accepted++
      } catch (error) {
        if (!(error instanceof TooLarge)) throw error
        refused = error
      }
    }
    const fillPeak = await server.peakSince()
    const atRefusal = await server.metrics()
    const used = atRefusal.get('dataspace_memory_used_bytes') ?? NaN
    await filler.session.retract(KIND, `fill-0`) // a retract still works past the budget
    await filler.close()
    clients.pop()
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const afterRelease = await server.heap()
    details['budget'] = {
      accepted,
      refused: refused?.message,
      usedBytes: used,
      budgetBytes: budget,
      heapAfterReleaseBytes: afterRelease,
    }
    rows.push({
      ...row(
        `1 MB records until the budget refuses (${fmt(accepted)} accepted)`,
        fillPeak,
        `refused: ${refused === undefined ? 'never (phase timed out)' : `TooLarge, limit ${refused.limit}`}; ` +
          `estimated use ${fmt(mib(used))} MiB of budget ${fmt(mib(budget))} MiB; heap after the ` +
          `session ended ${fmt(mib(afterRelease))} MiB`,
      ),
      met: refused !== undefined && underLimit(fillPeak),
    })
    details['heapLimitBytes'] = limit
    details['samples'] = server.samples.length
    details['peakHeapBytes'] = Math.max(...server.samples.map((s) => s.heap))
    return rows
  } finally {
    for (const watch of watches) watch.close()
    await openBatched(clients.length, 1000, (i) =>
      (clients[i] as DataspaceClient).close().catch(() => undefined),
    )
    await server.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point: the parent, or the server child.
// ---------------------------------------------------------------------------------------------

if (process.env['SOAK_CHILD'] === '1') {
  await serverChild()
} else {
  const args = benchArgs()
  const sizes = sizesFor(args.quick)
  const details: Record<string, unknown> = {}
  await runBenchmark('soak', args, { ...sizes, details }, [['soak', () => soak(sizes, details)]])
}
