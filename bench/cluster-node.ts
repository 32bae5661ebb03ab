/**
 * The node side of bench/cluster-nodes.ts: a dataspace on PostgreSQL in a child process of its
 * own — a cluster node (`cluster: true`, as `dataspace serve --cluster` opens it) or the
 * single-node writer (the exclusive one, the reference) — with its own event loop and
 * connections, driven over IPC (no HTTP in between). It runs client loads in a time window the
 * parent gives (a `process.hrtime` stamp: CLOCK_MONOTONIC, one clock for every process of the
 * machine, so the windows of several nodes line up), paced writes for the convergence figures,
 * and timed watchers (bench/cluster-follower.ts).
 */
import { postgresBackend } from '../src/backends/postgres/index.js'
import type { Backend, ClusterSeam, WriteBatch } from '../src/backends/index.js'
import { openDataspace } from '../src/index.js'
import type { Dataspace } from '../src/index.js'
import { answerParent, ChildChannel } from './child-channel.js'
import { PG_URL, sleep, stamp, TimedWatch } from './cluster-follower.js'
import { JOB_DATA } from './turn-loop.js'

/** `cluster`: a node of a cluster; `single`: the single-node server's exclusive writer. */
export type NodeMode = 'cluster' | 'single'

/** A client load: `clients` loops asserting one record after another, each on its own process. */
export interface LoadRequest {
  /** Prefix of the processes' names and the records' ids (unique per load and node). */
  readonly label: string
  readonly clients: number
  /** `process.hrtime.bigint()` at which the clients start, as a string. */
  readonly startAt: string
  /** Writes acknowledged in the first `warmupMs` are not counted. */
  readonly warmupMs: number
  /** The counted window; the clients stop at its end. */
  readonly seconds: number
}

/** What a node did in the counted window of a load. */
export interface Loaded {
  /** Writes acknowledged (asserts that resolved). */
  readonly commits: number
  /** Write turns this node took (cluster nodes; 0 on the single-node writer). */
  readonly turns: number
  /** Batches the backend wrote (`Backend.write` calls that resolved), and the commits in them. */
  readonly batches: number
  readonly batchCommits: number
  /** CPU seconds of this process (user + system). */
  readonly cpu: number
}

type ToNode =
  | ({ readonly type: 'load' } & LoadRequest)
  | { readonly type: 'watch'; readonly kind: string }
  | {
      readonly type: 'collect'
      readonly kind: string
      readonly count: number
      readonly timeoutMs: number
    }
  | {
      readonly type: 'write'
      readonly kind: string
      readonly writes: number
      /** Concurrent writes per round: 1 (paced) or a burst's size. */
      readonly burst: number
      readonly gapMs: number
    }
  | { readonly type: 'stop' }
type FromNode =
  | { readonly type: 'ready' | 'watching' | 'written' }
  | ({ readonly type: 'loaded' } & Loaded)
  | { readonly type: 'collected'; readonly latencies: number[]; readonly resets: number }

/** A window on the monotonic clock, and what the backend did in it. */
class Counters {
  from = 0n
  to = 0n
  turns = 0
  batches = 0
  batchCommits = 0

  open(from: bigint, to: bigint): void {
    this.from = from
    this.to = to
    this.turns = this.batches = this.batchCommits = 0
  }

  get inWindow(): boolean {
    const at = process.hrtime.bigint()
    return at >= this.from && at < this.to
  }
}

/**
 * `target` with some properties replaced; every other method runs on the object itself (the
 * backend keeps #private state), hence the binding.
 */
function override<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (Object.hasOwn(overrides, key)) return (overrides as Record<PropertyKey, unknown>)[key]
      const value: unknown = Reflect.get(object, key, object)
      return typeof value === 'function'
        ? ((value as (...args: unknown[]) => unknown).bind(object) as unknown)
        : value
    },
  })
}

/** The backend, counting the batches it writes and (cluster) the turns it takes. */
function instrument(backend: Backend, counters: Counters): Backend {
  const write = backend.write.bind(backend)
  const seam = backend.cluster
  const overrides: Partial<Backend> = {
    write: async (batch: WriteBatch) => {
      await write(batch)
      if (counters.inWindow) {
        counters.batches++
        counters.batchCommits += batch.commits.length
      }
    },
  }
  if (seam !== undefined) {
    // The seam is a frozen object of closures: a copy with `lock` counting, not a proxy.
    const cluster: ClusterSeam = {
      ...seam,
      lock: async (timeoutMs: number, after: number, limit: number) => {
        const page = await seam.lock(timeoutMs, after, limit)
        if (counters.inWindow) counters.turns++
        return page
      },
    }
    return override(backend, { ...overrides, cluster })
  }
  return override(backend, overrides)
}

/** Sleeps until `at` on the monotonic clock (`process.hrtime.bigint()`). */
export async function until(at: bigint): Promise<void> {
  for (;;) {
    const ms = Number(at - process.hrtime.bigint()) / 1e6
    if (ms <= 0) return
    await sleep(ms)
  }
}

async function load(ds: Dataspace, counters: Counters, request: LoadRequest): Promise<Loaded> {
  const start = BigInt(request.startAt)
  const from = start + BigInt(Math.round(request.warmupMs * 1e6))
  const to = from + BigInt(Math.round(request.seconds * 1e9))
  counters.open(from, to)
  await until(start)
  let cpuFrom = process.cpuUsage()
  let cpuUsed: NodeJS.CpuUsage | undefined
  const cpuTimers = [
    setTimeout(() => (cpuFrom = process.cpuUsage()), request.warmupMs),
    setTimeout(
      () => (cpuUsed = process.cpuUsage(cpuFrom)),
      request.warmupMs + request.seconds * 1000,
    ),
  ]
  let commits = 0
  await Promise.all(
    Array.from({ length: request.clients }, async (_, client) => {
      const name = `${request.label}-${client}`
      const proc = ds.process(name)
      for (let n = 0; process.hrtime.bigint() < to; n++) {
        await proc.assert('job', `${name}-${n}`, JOB_DATA)
        if (counters.inWindow) commits++
      }
      // Out of the window: retracts the load's records, so that the next load starts as small.
      await proc.exit()
    }),
  )
  for (const timer of cpuTimers) clearTimeout(timer)
  const used = cpuUsed ?? process.cpuUsage(cpuFrom)
  const { turns, batches, batchCommits } = counters
  return { commits, turns, batches, batchCommits, cpu: (used.user + used.system) / 1e6 }
}

/** `writes` timed asserts of `kind`, `burst` at once, `gapMs` apart (the convergence writes). */
async function write(ds: Dataspace, kind: string, writes: number, burst: number, gapMs: number) {
  const procs = Array.from({ length: burst }, (_, i) => ds.process(`${kind}-${i}`))
  for (let at = 0; at < writes; at += burst) {
    await Promise.all(
      procs.map((proc, i) => proc.assert(kind, `r${at + i}`, { t: stamp(), ...JOB_DATA })),
    )
    await sleep(gapMs)
  }
  await Promise.all(procs.map((proc) => proc.exit()))
}

async function nodeChild(): Promise<void> {
  const mode = process.env['BENCH_NODE_MODE'] as NodeMode
  const schema = process.env['BENCH_NODE_SCHEMA'] ?? ''
  const counters = new Counters()
  const backend = postgresBackend({
    url: PG_URL,
    schema,
    ...(mode === 'cluster' ? { cluster: true } : {}),
  })
  const ds = await openDataspace({ backend: instrument(backend, counters) })
  const watches = new Map<string, TimedWatch>()
  answerParent('node child', async (message: ToNode): Promise<FromNode | undefined> => {
    switch (message.type) {
      case 'load':
        return { type: 'loaded', ...(await load(ds, counters, message)) }
      case 'watch':
        watches.set(message.kind, await TimedWatch.open(ds, message.kind))
        return { type: 'watching' }
      case 'collect': {
        const collected = await watches.get(message.kind)?.collect(message.count, message.timeoutMs)
        watches.delete(message.kind)
        return { type: 'collected', latencies: [], resets: 0, ...collected }
      }
      case 'write':
        await write(ds, message.kind, message.writes, message.burst, message.gapMs)
        return { type: 'written' }
      case 'stop':
        await ds.close()
        process.exit(0)
        return undefined
      default:
        message satisfies never
        return undefined
    }
  })
}

/** A node child as the parent sees it: one request at a time, ended by its pid. */
export class NodeProcess {
  readonly mode: NodeMode
  readonly #channel: ChildChannel<ToNode, FromNode>

  private constructor(mode: NodeMode, channel: ChildChannel<ToNode, FromNode>) {
    this.mode = mode
    this.#channel = channel
  }

  static async start(schema: string, mode: NodeMode): Promise<NodeProcess> {
    const channel = await ChildChannel.fork<ToNode, FromNode>(
      `${mode} node child`,
      import.meta.url,
      {
        BENCH_NODE_CHILD: '1',
        BENCH_NODE_SCHEMA: schema,
        BENCH_NODE_MODE: mode,
      },
    )
    return new NodeProcess(mode, channel)
  }

  /** Runs a client load; resolves once its clients stopped (and exited) after the window. */
  async load(request: LoadRequest): Promise<Loaded> {
    const { type: _, ...loaded } = await this.#channel.request(
      { type: 'load', ...request },
      'loaded',
    )
    return loaded
  }

  async watch(kind: string): Promise<void> {
    await this.#channel.request({ type: 'watch', kind }, 'watching')
  }

  /** The latencies of the events of `kind` once `count` arrived (or after `timeoutMs`). */
  async collect(
    kind: string,
    count: number,
    timeoutMs = 30_000,
  ): Promise<{ latencies: number[]; resets: number }> {
    return this.#channel.request({ type: 'collect', kind, count, timeoutMs }, 'collected')
  }

  /** Timed asserts of `kind` (`{ t: stamp }`), `burst` at once, `gapMs` apart. */
  async write(kind: string, writes: number, burst: number, gapMs: number): Promise<void> {
    await this.#channel.request({ type: 'write', kind, writes, burst, gapMs }, 'written')
  }

  async stop(): Promise<void> {
    await this.#channel.stop({ type: 'stop' })
  }
}

if (process.env['BENCH_NODE_CHILD'] === '1') await nodeChild()
