/**
 * The server benchmark: the network path (client → WebSocket `/v1/ws` → server → watcher
 * client), against Redis measured in this same run with the same number of clients.
 *
 * 1. `throughput`: N writer clients (1, 10, 50), each with W asserts in flight, and one watcher
 *    client watching the whole kind. Reports asserts/s, and assert→watcher latency (a timestamp
 *    in the data, read at the watcher) p50/p99, and checks that the watcher saw every change.
 *    Redis does the same work as `SET key value` + `PUBLISH channel value` per op (ioredis with
 *    auto-pipelining, W ops in flight per connection) with one subscriber connection.
 * 2. `paced`: a fixed 10k ops/s (open loop, 10 clients), p50/p99 assert→watcher latency, both systems.
 * 3. `memory`: the server process's settled heap and RSS for 10k idle sessions and 100k idle
 *    watchers (100 clients × 1000 watches on distinct id prefixes), against Redis's `used_memory`
 *    for as many idle connections and subscribed channels.
 *
 * The server runs in a child process (`node --expose-gc --import tsx`, this same file with
 * `BENCH_SERVER_CHILD=1`), so clients and server do not share an event loop; it reports
 * `process.memoryUsage()` after full collections over IPC and is ended by its pid. Clients (ours
 * and ioredis) all run in this process. Prints a table, writes `bench/results/server.json`.
 *
 * Scale via environment: `BENCH_SERVER_SECONDS` (measured seconds per throughput run),
 * `BENCH_SERVER_WINDOW` (ops in flight per client), `BENCH_SERVER_CLIENTS` (e.g. `1,10,50`),
 * `BENCH_SERVER_ROUNDS`, `BENCH_SERVER_RATE` (paced ops/s), `BENCH_SERVER_SESSIONS`, `BENCH_SERVER_WATCH_CLIENTS`,
 * `BENCH_SERVER_WATCHES` (per client), `BENCH_SERVER_CPU_PROF=<dir>` (profiles the server child),
 * `DATASPACE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
 *
 * @example
 * // Full run, about 2 minutes on two cores:
 * //   node --expose-gc --import tsx bench/server.ts      (npm run bench:server)
 * // Smoke run, under 30 s:
 * //   node --expose-gc --import tsx bench/server.ts --quick
 * // One group only:
 * //   node --expose-gc --import tsx bench/server.ts --only=memory
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { connect } from '../src/client/index.js'
import type { DataspaceClient } from '../src/client/index.js'
import type { WatchEvent } from '../src/index.js'
import { createDataspace } from '../src/index.js'
import { createServer } from '../src/server/index.js'
import type { Row } from './lib.js'
import { fmt, median, openBatched, percentile, settledHeap, stopChild } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'

const KIND = 'bench.server'
const REDIS_URL = process.env['DATASPACE_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'
const SERVER_NOTE =
  'server in a child process (own event loop, log level warn, per-session limits raised); ' +
  'all clients in the parent'
/**
 * The per-session abuse limits (10k calls/s, 100k records, 1000 streams by default) would
 * refuse a single client's load: this measures capacity, not the limiter, so they are raised.
 */
const BENCH_LIMITS = {
  maxCallsPerSecond: 1_000_000_000,
  callBurst: 1_000_000_000,
  maxRecordsPerSession: 1_000_000_000,
  maxStreamsPerSession: 1_000_000,
  // One parent process opens every session and connection from 127.0.0.1.
  maxSessionsPerAddress: 1_000_000,
  maxConnectionsPerAddress: 1_000_000,
}

// ---------------------------------------------------------------------------------------------
// The server child.
// ---------------------------------------------------------------------------------------------

/** What the server child reports over IPC. */
interface ServerMemory {
  readonly heapUsed: number
  readonly rss: number
  readonly external: number
  readonly sessions: number
  readonly wsConnections: number
  readonly watchers: number
  readonly records: number
}

type ToChild = { readonly type: 'memory' | 'cpu' | 'stop' }
type FromChild =
  | { readonly type: 'ready'; readonly url: string }
  | { readonly type: 'cpu'; readonly seconds: number }
  | ({ readonly type: 'memory' } & ServerMemory)

async function serverChild(): Promise<void> {
  const ds = createDataspace()
  await ds.defineKind(KIND)
  const server = await createServer({
    ds,
    port: 0,
    limits: BENCH_LIMITS,
    // Warnings and errors only: one info line per session would cost the server at 10k sessions.
    logger: pino({ name: 'bench-server', level: 'warn' }, pino.destination(2)),
  })
  const send = (message: FromChild): void => void process.send?.(message)
  process.on('message', (message: ToChild) => {
    if (message.type === 'stop') process.exit(0)
    if (message.type === 'cpu') {
      const { user, system } = process.cpuUsage()
      send({ type: 'cpu', seconds: (user + system) / 1e6 })
      return
    }
    settledHeap()
    const usage = process.memoryUsage()
    const { sessions, wsConnections } = server.stats
    const { watchers, records } = ds.stats
    send({
      type: 'memory',
      heapUsed: usage.heapUsed,
      rss: usage.rss,
      external: usage.external,
      sessions,
      wsConnections,
      watchers,
      records,
    })
  })
  // The parent going away (crash, Ctrl-C) ends the child too.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', url: server.url })
}

/** The server child as the parent sees it: started, asked for its memory, ended by its pid. */
class ServerProcess {
  readonly url: string
  readonly #child: ChildProcess
  readonly #exited: Promise<void>

  private constructor(child: ChildProcess, url: string, exited: Promise<void>) {
    this.#child = child
    this.url = url
    this.#exited = exited
  }

  static async start(): Promise<ServerProcess> {
    const profileDir = process.env['BENCH_SERVER_CPU_PROF']
    const execArgv = ['--expose-gc', '--import', 'tsx']
    if (profileDir !== undefined) execArgv.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`)
    const child = fork(fileURLToPath(import.meta.url), [], {
      execArgv,
      env: { ...process.env, BENCH_SERVER_CHILD: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const url = await new Promise<string>((resolve, reject) => {
      child.once('message', (message: FromChild) => {
        if (message.type === 'ready') resolve(message.url.replace('http:', 'ws:'))
        else reject(new Error(`server child: unexpected ${message.type}`))
      })
      child.once('exit', (code) => reject(new Error(`server child exited early (${code})`)))
    })
    return new ServerProcess(child, url, exited)
  }

  memory(): Promise<ServerMemory> {
    return new Promise((resolve) => {
      this.#child.once('message', (message: FromChild) => {
        if (message.type === 'memory') resolve(message)
      })
      this.#child.send({ type: 'memory' } satisfies ToChild)
    })
  }

  /** CPU seconds (user + system) the server child has used so far. */
  cpu(): Promise<number> {
    return new Promise((resolve) => {
      this.#child.once('message', (message: FromChild) => {
        if (message.type === 'cpu') resolve(message.seconds)
      })
      this.#child.send({ type: 'cpu' } satisfies ToChild)
    })
  }

  /** Asks the child to exit (which writes its CPU profile), then kills it by pid if it lingers. */
  async stop(): Promise<void> {
    await stopChild(this.#child, this.#exited, { type: 'stop' } satisfies ToChild)
  }
}

// ---------------------------------------------------------------------------------------------
// Load generation, shared by both systems.
// ---------------------------------------------------------------------------------------------

/** Sizes of one run. */
export interface ServerSizes {
  readonly clients: readonly number[]
  /** Ops in flight per writer client. */
  readonly window: number
  readonly warmupSeconds: number
  readonly seconds: number
  /** Throughput rounds per client count, alternating which system goes first. */
  readonly rounds: number
  readonly rate: number
  readonly pacedClients: number
  readonly pacedSeconds: number
  readonly sessions: number
  readonly watchClients: number
  readonly watchesPerClient: number
}

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`)
  return value
}

function sizesFor(quick: boolean): ServerSizes {
  const clients = process.env['BENCH_SERVER_CLIENTS']
  return {
    clients: clients !== undefined && clients !== '' ? clients.split(',').map(Number) : [1, 10, 50],
    window: envNumber('BENCH_SERVER_WINDOW', 16),
    warmupSeconds: quick ? 0.3 : 1,
    seconds: envNumber('BENCH_SERVER_SECONDS', quick ? 1 : 2),
    rounds: envNumber('BENCH_SERVER_ROUNDS', quick ? 1 : 3),
    rate: envNumber('BENCH_SERVER_RATE', 10_000),
    pacedClients: 10,
    pacedSeconds: quick ? 1 : 5,
    sessions: envNumber('BENCH_SERVER_SESSIONS', quick ? 1000 : 10_000),
    watchClients: envNumber('BENCH_SERVER_WATCH_CLIENTS', quick ? 10 : 100),
    watchesPerClient: envNumber('BENCH_SERVER_WATCHES', 1000),
  }
}

/** About 300 bytes of JSON: the send time (this process's monotonic clock), who, and padding. */
interface Payload {
  readonly t: number
  readonly c: number
  readonly n: number
  readonly pad: string
}
const PAD = 'x'.repeat(256)
const payload = (c: number, n: number): Payload => ({ t: performance.now(), c, n, pad: PAD })

/** One system under test: how to issue one op, and what its watcher saw. */
interface System {
  readonly label: string
  /** Writes op `n` of client `c` (distinct ids); resolves when acknowledged. */
  issue(c: number, n: number): Promise<unknown>
  readonly watcher: WatcherTally
  /** CPU seconds the server (our child, or redis-server) has used so far. */
  serverCpu(): Promise<number>
  close(): Promise<void>
}

/** What a watcher (our watch, or a Redis subscriber) received. */
class WatcherTally {
  received = 0
  resets = 0
  /** Latencies of ops sent at or after `measureFrom` (ms), at the watcher. */
  readonly latencies: number[] = []
  measureFrom = Infinity
  #waiting: { count: number; resolve: () => void } | undefined

  note(sentAt: number): void {
    this.received++
    if (sentAt >= this.measureFrom) this.latencies.push(performance.now() - sentAt)
    if (this.#waiting !== undefined && this.received >= this.#waiting.count) {
      this.#waiting.resolve()
      this.#waiting = undefined
    }
  }

  /** Resolves once `count` changes arrived, or after `timeoutMs` (the count then tells). */
  async waitFor(count: number, timeoutMs: number): Promise<void> {
    if (this.received >= count) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => (this.#waiting = { count, resolve })),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ])
    clearTimeout(timer)
    this.#waiting = undefined
  }
}

/** Result of one load run. */
interface LoadResult {
  readonly ops: number
  readonly opsPerSecond: number
  /** Every op issued, warm-up included: what the watcher must have received. */
  readonly issued: number
  readonly received: number
  readonly resets: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly ackP99: number
  readonly latencySamples: number
  /** Share of one core the server, and this (client) process, used while measured. */
  readonly serverCpu: number
  readonly clientCpu: number
}

/** CPU use of the server and of this process over a measured window. */
async function cpuWindow(system: System): Promise<() => Promise<[number, number]>> {
  const server = await system.serverCpu()
  const client = process.cpuUsage()
  const start = performance.now()
  return async () => {
    const seconds = (performance.now() - start) / 1000
    const { user, system: sys } = process.cpuUsage(client)
    return [((await system.serverCpu()) - server) / seconds, (user + sys) / 1e6 / seconds]
  }
}

/**
 * Closed loop: every client keeps `window` ops in flight until the deadline; a warm-up of the
 * same shape runs first and is not measured.
 */
async function closedLoop(system: System, sizes: ServerSizes, clients: number) {
  const counters = new Array<number>(clients).fill(0)
  let issued = 0
  const run = async (seconds: number, acks: number[] | undefined): Promise<number> => {
    const end = performance.now() + seconds * 1000
    let ops = 0
    const worker = async (c: number): Promise<void> => {
      while (performance.now() < end) {
        const sent = performance.now()
        issued++
        await system.issue(c, counters[c]!++)
        acks?.push(performance.now() - sent)
        ops++
      }
    }
    const workers: Promise<void>[] = []
    for (let c = 0; c < clients; c++) for (let w = 0; w < sizes.window; w++) workers.push(worker(c))
    await Promise.all(workers)
    return ops
  }
  await run(sizes.warmupSeconds, undefined)
  const acks: number[] = []
  const cpu = await cpuWindow(system)
  system.watcher.measureFrom = performance.now()
  const start = performance.now()
  const ops = await run(sizes.seconds, acks)
  const elapsed = performance.now() - start
  return finish(system, issued, ops, (ops * 1000) / elapsed, acks, await cpu())
}

/** Open loop at a fixed rate: every millisecond tick sends what is due, whatever is in flight. */
async function pacedLoop(system: System, sizes: ServerSizes): Promise<LoadResult> {
  const total = Math.round(sizes.rate * sizes.pacedSeconds)
  const acks: number[] = []
  const counters = new Array<number>(sizes.pacedClients).fill(0)
  let issued = 0
  let done = 0
  const cpu = await cpuWindow(system)
  system.watcher.measureFrom = performance.now()
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * sizes.rate) / 1000))
      while (issued < due) {
        const c = issued % sizes.pacedClients
        const sent = performance.now()
        issued++
        system.issue(c, counters[c]!++).then(() => {
          acks.push(performance.now() - sent)
          if (++done === total) resolve()
        }, reject)
      }
      if (issued < total) setTimeout(tick, 1)
    }
    tick()
  })
  const elapsed = performance.now() - start
  return finish(system, issued, done, (done * 1000) / elapsed, acks, await cpu())
}

async function finish(
  system: System,
  issued: number,
  ops: number,
  opsPerSecond: number,
  acks: readonly number[],
  [serverCpu, clientCpu]: [number, number],
): Promise<LoadResult> {
  await system.watcher.waitFor(issued, 15_000)
  const { latencies, received, resets } = system.watcher
  return {
    ops,
    opsPerSecond,
    issued,
    received,
    resets,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
    ackP99: percentile(acks, 99),
    latencySamples: latencies.length,
    serverCpu,
    clientCpu,
  }
}

// ---------------------------------------------------------------------------------------------
// The two systems.
// ---------------------------------------------------------------------------------------------

async function dataspaceSystem(
  server: ServerProcess,
  clients: number,
  run: string,
): Promise<System> {
  const url = server.url
  const watcher = new WatcherTally()
  const watchClient = await connect(url, { name: 'watcher' })
  const watch = watchClient.watch<Payload>(KIND)
  const iterator = watch[Symbol.asyncIterator]()
  const first = await iterator.next()
  if (first.done === true || first.value.type !== 'snapshot') throw new Error('expected a snapshot')
  const consume = (async () => {
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) return
      const event: WatchEvent<Payload> = next.value
      if (event.type === 'asserted') watcher.note(event.record.data.t)
      else if (event.type === 'reset') watcher.resets++
    }
  })()
  const writers: DataspaceClient[] = await Promise.all(
    Array.from({ length: clients }, (_, c) => connect(url, { name: `writer-${c}` })),
  )
  const procs = writers.map((client) => client.process('writer'))
  return {
    label: 'dataspace',
    watcher,
    serverCpu: () => server.cpu(),
    issue: (c, n) => procs[c]!.assert(KIND, `${run}-${c}-${n}`, payload(c, n)),
    async close() {
      watch.close()
      await consume
      // Each session's exit retracts what it wrote, so the next run starts from an empty kind.
      await Promise.all([watchClient, ...writers].map((client) => client.close()))
    },
  }
}

async function redisSystem(clients: number, run: string): Promise<System> {
  const watcher = new WatcherTally()
  const channel = `dsbench:${run}`
  const subscriber = new Redis(REDIS_URL)
  await subscriber.subscribe(channel)
  subscriber.on('message', (_channel: string, message: string) => {
    watcher.note((JSON.parse(message) as Payload).t)
  })
  // Auto-pipelining sends what is issued in one tick as one write, as our client batches a
  // microtask's calls into one frame.
  const writers = Array.from(
    { length: clients },
    () => new Redis(REDIS_URL, { enableAutoPipelining: true }),
  )
  await Promise.all(writers.map((writer) => writer.ping()))
  const written = new Array<number>(clients).fill(0)
  return {
    label: 'redis',
    watcher,
    async serverCpu() {
      const info = await writers[0]!.info('cpu')
      const field = (name: string): number =>
        Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1])
      return field('used_cpu_user') + field('used_cpu_sys')
    },
    issue(c, n) {
      const writer = writers[c]!
      const value = JSON.stringify(payload(c, n))
      written[c] = Math.max(written[c]!, n + 1)
      return Promise.all([
        writer.set(`${channel}:${c}:${n}`, value),
        writer.publish(channel, value),
      ])
    },
    async close() {
      // Delete what the run wrote, as the dataspace retracts it when the sessions exit.
      const cleaner = writers[0]!
      for (let c = 0; c < clients; c++) {
        for (let from = 0; from < written[c]!; from += 1000) {
          const keys: string[] = []
          for (let n = from; n < Math.min(written[c]!, from + 1000); n++) {
            keys.push(`${channel}:${c}:${n}`)
          }
          await cleaner.unlink(...keys)
        }
      }
      subscriber.disconnect()
      for (const writer of writers) writer.disconnect()
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario groups.
// ---------------------------------------------------------------------------------------------

const runId = (): string => randomBytes(4).toString('hex')
const fmtMs = (value: number): string => `${fmt(value, 2)} ms`

async function measure(
  make: () => Promise<System>,
  load: (system: System) => Promise<LoadResult>,
): Promise<LoadResult> {
  const system = await make()
  try {
    return await load(system)
  } finally {
    await system.close()
  }
}

function deliveryNote(result: LoadResult): string {
  const missing = result.issued - result.received
  return (
    `watcher got ${fmt(result.received)}/${fmt(result.issued)} changes` +
    (missing === 0 ? ' (every one)' : ` (${fmt(missing)} MISSING)`) +
    (result.resets > 0 ? `, ${result.resets} resets` : '')
  )
}

/** Medians over rounds (figures), sums (counts). */
function combine(results: readonly LoadResult[]): LoadResult {
  const mid = (pick: (result: LoadResult) => number): number => median(results.map(pick))
  const sum = (pick: (result: LoadResult) => number): number =>
    results.reduce((total, result) => total + pick(result), 0)
  return {
    ops: sum((r) => r.ops),
    opsPerSecond: mid((r) => r.opsPerSecond),
    issued: sum((r) => r.issued),
    received: sum((r) => r.received),
    resets: sum((r) => r.resets),
    p50: mid((r) => r.p50),
    p99: mid((r) => r.p99),
    max: Math.max(...results.map((r) => r.max)),
    ackP99: mid((r) => r.ackP99),
    latencySamples: sum((r) => r.latencySamples),
    serverCpu: mid((r) => r.serverCpu),
    clientCpu: mid((r) => r.clientCpu),
  }
}

function cpuNote(ours: LoadResult, redis: LoadResult): string {
  const pct = (share: number): string => `${fmt(share * 100, 0)}%`
  return (
    `CPU (share of one core): server child ${pct(ours.serverCpu)}, clients ${pct(ours.clientCpu)}; ` +
    `redis-server ${pct(redis.serverCpu)}, clients ${pct(redis.clientCpu)}`
  )
}

async function throughputScenarios(sizes: ServerSizes, results: Record<string, unknown>) {
  const rows: Row[] = []
  const server = await ServerProcess.start()
  try {
    for (const clients of sizes.clients) {
      // Rounds alternate which system goes first (the machine is shared: load comes and goes);
      // each run has the same warm-up, so a JIT-warm server child meets an always-warm Redis.
      const rounds: { ours: LoadResult; redis: LoadResult }[] = []
      for (let round = 0; round < sizes.rounds; round++) {
        const runRedis = () =>
          measure(
            () => redisSystem(clients, runId()),
            (system) => closedLoop(system, sizes, clients),
          )
        const runOurs = () =>
          measure(
            () => dataspaceSystem(server, clients, runId()),
            (system) => closedLoop(system, sizes, clients),
          )
        if (round % 2 === 0) {
          const redis = await runRedis()
          rounds.push({ redis, ours: await runOurs() })
        } else {
          const ours = await runOurs()
          rounds.push({ ours, redis: await runRedis() })
        }
      }
      results[`throughput-${clients}`] = rounds
      const ours = combine(rounds.map((r) => r.ours))
      const redis = combine(rounds.map((r) => r.redis))
      const ratios = rounds.map((r) => r.ours.opsPerSecond / r.redis.opsPerSecond)
      const label = `${clients} client${clients === 1 ? '' : 's'} × ${sizes.window} in flight, 1 watcher`
      const ratio = median(ratios)
      const perRound =
        sizes.rounds === 1
          ? ''
          : `median of ${sizes.rounds} rounds (ratios ${ratios.map((r) => fmt(r)).join(', ')}); `
      rows.push(
        {
          group: 'throughput',
          scenario: `${label}: asserts/s`,
          value: ours.opsPerSecond,
          unit: 'ops/s',
          baseline: { label: 'Redis SET+PUBLISH', value: redis.opsPerSecond },
          ratio,
          target: '≥ 1× Redis',
          met: ratio >= 1,
          note:
            perRound +
            `${deliveryNote(ours)}; Redis subscriber ${deliveryNote(redis)}; ` +
            `ack p99 ${fmtMs(ours.ackP99)} vs Redis ${fmtMs(redis.ackP99)}; ${cpuNote(ours, redis)}`,
        },
        {
          group: 'throughput',
          scenario: `${label}: assert→watcher p50`,
          value: ours.p50,
          unit: 'ms',
          baseline: { label: 'Redis', value: redis.p50 },
          ratio: redis.p50 / ours.p50,
          target: '— (info, saturated)',
        },
        {
          group: 'throughput',
          scenario: `${label}: assert→watcher p99`,
          value: ours.p99,
          unit: 'ms',
          baseline: { label: 'Redis', value: redis.p99 },
          ratio: redis.p99 / ours.p99,
          target: '— (info, saturated)',
        },
        {
          group: 'throughput',
          scenario: `${label}: watcher saw every change`,
          value: ours.received,
          unit: 'events',
          baseline: { label: 'changes', value: ours.issued },
          ratio: ours.received / ours.issued,
          target: 'all, no reset',
          met: ours.received === ours.issued && ours.resets === 0,
        },
      )
    }
  } finally {
    await server.stop()
  }
  return rows
}

async function pacedScenarios(sizes: ServerSizes, results: Record<string, unknown>) {
  const server = await ServerProcess.start()
  try {
    const clients = sizes.pacedClients
    // A short unmeasured closed-loop warm-up, so the first paced ops do not pay for the JIT.
    const warm = { ...sizes, seconds: sizes.warmupSeconds }
    await measure(
      () => dataspaceSystem(server, clients, runId()),
      (system) => closedLoop(system, warm, clients),
    )
    const redis = await measure(
      () => redisSystem(clients, runId()),
      (s) => pacedLoop(s, sizes),
    )
    const ours = await measure(
      () => dataspaceSystem(server, clients, runId()),
      (system) => pacedLoop(system, sizes),
    )
    results['paced'] = { dataspace: ours, redis }
    const label = `${fmt(sizes.rate)} ops/s paced, ${clients} clients, 1 watcher`
    const note =
      `achieved ${fmt(ours.opsPerSecond)} ops/s (Redis ${fmt(redis.opsPerSecond)}); ` +
      `max ${fmtMs(ours.max)} (Redis ${fmtMs(redis.max)}); ack p99 ${fmtMs(ours.ackP99)} ` +
      `(Redis ${fmtMs(redis.ackP99)}); ${deliveryNote(ours)}; ${cpuNote(ours, redis)}`
    return [
      {
        group: 'paced',
        scenario: `${label}: assert→watcher p50`,
        value: ours.p50,
        unit: 'ms',
        baseline: { label: 'Redis', value: redis.p50 },
        ratio: redis.p50 / ours.p50,
        target: '— (info)',
      },
      {
        group: 'paced',
        scenario: `${label}: assert→watcher p99`,
        value: ours.p99,
        unit: 'ms',
        baseline: { label: 'Redis', value: redis.p99 },
        ratio: redis.p99 / ours.p99,
        target: '< 2 ms',
        met: ours.p99 < 2 && ours.received === ours.issued,
        note,
      },
    ] satisfies Row[]
  } finally {
    await server.stop()
  }
}

/** Opens `count` of something, `batch` at a time (bounded concurrency). */
async function redisUsedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  const match = /^used_memory:(\d+)/m.exec(info)
  if (match === null) throw new Error('no used_memory in INFO memory')
  return Number(match[1])
}

/** Redis's own accounting (`used_memory`) for idle connections and subscribed channels. */
async function redisMemory(sizes: ServerSizes) {
  const admin = new Redis(REDIS_URL)
  const connectedClients = async (): Promise<number> =>
    Number(/^connected_clients:(\d+)/m.exec(await admin.info('clients'))?.[1])
  const open = (count: number): Promise<Redis[]> =>
    openBatched(count, 200, async () => {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false })
      await redis.connect()
      return redis
    })
  /** Disconnects, then waits until Redis has freed them, so the next figure starts clean. */
  const close = async (conns: readonly Redis[]): Promise<void> => {
    const target = (await connectedClients()) - conns.length
    for (const redis of conns) redis.disconnect()
    for (let i = 0; i < 100 && (await connectedClients()) > target; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  try {
    const maxClients = Number((await admin.config('GET', 'maxclients'))[1])
    const connections = Math.min(sizes.sessions, maxClients - (await connectedClients()) - 50)
    const before = await redisUsedMemory(admin)
    const conns = await open(connections)
    const afterConns = await redisUsedMemory(admin)
    await close(conns)
    const run = runId()
    const subscribers = await open(sizes.watchClients)
    const subscriptions = subscribers.length * sizes.watchesPerClient
    const beforeSubs = await redisUsedMemory(admin)
    await Promise.all(
      subscribers.map((redis, c) =>
        redis.subscribe(
          ...Array.from({ length: sizes.watchesPerClient }, (_, i) => `dsbench:${run}:${c}:${i}`),
        ),
      ),
    )
    const afterSubs = await redisUsedMemory(admin)
    await close(subscribers)
    return {
      connections,
      perConnection: (afterConns - before) / connections,
      subscriptions,
      perSubscription: (afterSubs - beforeSubs) / subscriptions,
    }
  } finally {
    admin.disconnect()
  }
}

async function memoryScenarios(sizes: ServerSizes, results: Record<string, unknown>) {
  const server = await ServerProcess.start()
  let clients: DataspaceClient[] = []
  try {
    const empty = await server.memory()
    const openStart = performance.now()
    clients = await openBatched(sizes.sessions, 100, (i) =>
      connect(server.url, { name: `idle-${i}` }),
    )
    const openMs = performance.now() - openStart
    const withSessions = await server.memory()
    if (withSessions.sessions < sizes.sessions) {
      throw new Error(
        `expected ${sizes.sessions} sessions, the server has ${withSessions.sessions}`,
      )
    }
    // Watches on the first clients, each on its own id prefix, each confirmed by its snapshot.
    const watchers = sizes.watchClients * sizes.watchesPerClient
    const watchStart = performance.now()
    const watches = await Promise.all(
      clients.slice(0, sizes.watchClients).map(async (client, c) => {
        const opened = Array.from({ length: sizes.watchesPerClient }, (_, i) =>
          client.watch(KIND, { id: `m-${c}-${i}-*` }),
        )
        for (const watch of opened) {
          const first = await watch.next()
          if (first.done === true || first.value.type !== 'snapshot') {
            throw new Error('expected a snapshot')
          }
        }
        return opened
      }),
    )
    const watchMs = performance.now() - watchStart
    const withWatches = await server.memory()
    if (withWatches.watchers < watchers) {
      throw new Error(`expected ${watchers} watchers, the server has ${withWatches.watchers}`)
    }
    const perSession = (withSessions.heapUsed - empty.heapUsed) / sizes.sessions
    const perSessionRss = (withSessions.rss - empty.rss) / sizes.sessions
    const perWatcher = (withWatches.heapUsed - withSessions.heapUsed) / watchers
    const perWatcherRss = (withWatches.rss - withSessions.rss) / watchers
    for (const opened of watches) for (const watch of opened) watch.close()
    const redis = await redisMemory(sizes)
    results['memory'] = {
      empty,
      withSessions,
      withWatches,
      openSessionsMs: openMs,
      openWatchesMs: watchMs,
      redis,
    }
    return [
      {
        group: 'memory',
        scenario: `server heap per idle session (${fmt(sizes.sessions)} WebSocket clients)`,
        value: perSession,
        unit: 'bytes',
        baseline: { label: 'Redis per idle connection', value: redis.perConnection },
        ratio: redis.perConnection / perSession,
        target: '— (info)',
        note:
          `server RSS +${fmt(perSessionRss)} B/session; opened in ${fmt(openMs / 1000)} s; ` +
          `Redis figure is its used_memory over ${fmt(redis.connections)} connections`,
      },
      {
        group: 'memory',
        scenario: `server heap per idle watcher (${fmt(sizes.watchClients)} clients × ${fmt(sizes.watchesPerClient)}, id m-c-i-*)`,
        value: perWatcher,
        unit: 'bytes',
        baseline: { label: 'Redis per subscribed channel', value: redis.perSubscription },
        ratio: redis.perSubscription / perWatcher,
        target: '≤ 350 B',
        met: perWatcher <= 350,
        note: `server RSS +${fmt(perWatcherRss)} B/watcher; opened in ${fmt(watchMs / 1000)} s`,
      },
    ] satisfies Row[]
  } finally {
    await openBatched(clients.length, 1000, (i) => clients[i]!.close())
    await server.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point: the parent, or the server child.
// ---------------------------------------------------------------------------------------------

if (process.env['BENCH_SERVER_CHILD'] === '1') {
  await serverChild()
} else {
  const args = benchArgs()
  const sizes = sizesFor(args.quick)
  const results: Record<string, unknown> = {}
  console.log(`${SERVER_NOTE}; Redis at ${REDIS_URL}`)
  const groups: ScenarioGroup[] = [
    ['throughput', () => throughputScenarios(sizes, results)],
    ['paced', () => pacedScenarios(sizes, results)],
    ['memory', () => memoryScenarios(sizes, results)],
  ]
  await runBenchmark('server', args, { ...sizes, serverProcess: 'child', details: results }, groups)
}
