/**
 * The follower side of bench/cluster.ts: a follower dataspace (`follow: true`) in a child
 * process of its own, driven over IPC, and a watcher that times each asserted event against the
 * stamp its record carries. `process.hrtime` is CLOCK_MONOTONIC on Linux, one clock for every
 * process of the machine, so a stamp taken in the writer's process can be subtracted here.
 */
import { postgresBackend } from '../src/backends/postgres/index.js'
import type { Backend, ChangesPage } from '../src/backends/index.js'
import { openDataspace } from '../src/index.js'
import type { Dataspace, Watch } from '../src/index.js'
import { answerParent, ChildChannel } from './child-channel.js'
import { fmt, percentile } from './lib.js'

export const PG_URL =
  process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
/** The followers' poll (the default `followPollMs`): the poll-only baseline's only wake-up. */
export const POLL_MS = 250

/** Milliseconds since a `process.hrtime.bigint()` taken in this or another process. */
export function msSinceStamp(stamp: string): number {
  return Number(process.hrtime.bigint() - BigInt(stamp)) / 1e6
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms))

/** Now, as the stamp a timed record carries. */
export const stamp = (): string => process.hrtime.bigint().toString()

/** Percentiles of latencies, in ms. */
export interface Spread {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly count: number
}

export function spread(latencies: readonly number[]): Spread {
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.reduce((max, ms) => Math.max(max, ms), -Infinity),
    count: latencies.length,
  }
}

export const describe = (s: Spread): string =>
  `p50 ${fmt(s.p50)} / p99 ${fmt(s.p99)} / max ${fmt(s.max)} ms over ${s.count} events`

// ---------------------------------------------------------------------------------------------
// A watcher that times each asserted event against the stamp in its record (in either process).
// ---------------------------------------------------------------------------------------------

/** Latencies of the asserted events of one kind, as they arrive. */
export class TimedWatch {
  readonly latencies: number[] = []
  readonly #watch: Watch
  readonly #done: Promise<void>
  #resets = 0

  private constructor(watch: Watch) {
    this.#watch = watch
    this.#done = this.#consume()
  }

  /** Opens the watch and resolves once its snapshot arrived: later writes are all timed. */
  static async open(ds: Dataspace, kind: string): Promise<TimedWatch> {
    const watch = ds.watch(kind)
    const first = await watch.next()
    if (first.done === true || first.value.type !== 'snapshot') throw new Error('no snapshot')
    return new TimedWatch(watch)
  }

  async #consume(): Promise<void> {
    for (;;) {
      const { value, done } = await this.#watch.next()
      if (done === true) return
      if (value.type === 'asserted') {
        const stamp = (value.record.data as { t?: unknown }).t
        if (typeof stamp === 'string') this.latencies.push(msSinceStamp(stamp))
      } else if (value.type === 'reset') this.#resets++
    }
  }

  /** Waits until `count` events arrived (or `timeoutMs` passed), then closes the watch. */
  async collect(
    count: number,
    timeoutMs = 30_000,
  ): Promise<{ latencies: number[]; resets: number }> {
    const deadline = Date.now() + timeoutMs
    while (this.latencies.length < count && Date.now() < deadline) await sleep(5)
    await this.#watch.return()
    await this.#done
    return { latencies: this.latencies, resets: this.#resets }
  }
}

// ---------------------------------------------------------------------------------------------
// The follower child: a follower dataspace, driven over IPC.
// ---------------------------------------------------------------------------------------------

export type Mode = 'doorbell' | 'poll'
type ToChild =
  | { readonly type: 'watch'; readonly kind: string }
  | {
      readonly type: 'collect'
      readonly kind: string
      readonly count: number
      readonly timeoutMs: number
    }
  | { readonly type: 'catch-up'; readonly revision: number }
  | { readonly type: 'usage' }
  | { readonly type: 'stop' }
type FromChild =
  | { readonly type: 'ready' | 'watching' }
  | { readonly type: 'collected'; readonly latencies: number[]; readonly resets: number }
  | { readonly type: 'caught-up'; readonly ms: number; readonly revision: number }
  | { readonly type: 'used'; readonly usage: Usage }

/** What a follower child did so far: its CPU, the rings it heard, the feed reads it made. */
export interface Usage {
  /** CPU seconds (user + system). */
  readonly cpu: number
  readonly rings: number
  readonly reads: number
  /** Commits those reads returned. */
  readonly commits: number
}

/**
 * Counts a follower backend's rings and feed reads; with `ring: false` its doorbell never rings,
 * so it only polls (the baseline). The backend keeps #private state: its methods must run on the
 * object itself, hence the proxy binding them.
 */
export function instrument(
  backend: Backend,
  ring: boolean,
): { backend: Backend; usage: () => Usage } {
  const seam = backend.follower
  if (seam === undefined) throw new Error('not a follower backend')
  const changesSince = backend.changesSince?.bind(backend)
  if (changesSince === undefined) throw new Error('a follower backend without a feed')
  const counts = { rings: 0, reads: 0, commits: 0 }
  const follower = {
    listen: ring
      ? (wake: () => void) =>
          seam.listen(() => {
            counts.rings++
            wake()
          })
      : async () => async () => undefined,
    kinds: () => seam.kinds(),
  }
  const feed = async (revision: number, limit: number): Promise<ChangesPage> => {
    const page = await changesSince(revision, limit)
    counts.reads++
    if (!page.trimmed) counts.commits += page.commits.length
    return page
  }
  const proxy = new Proxy(backend, {
    get(target, key) {
      if (key === 'follower') return follower
      if (key === 'changesSince') return feed
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === 'function'
        ? ((value as (...args: unknown[]) => unknown).bind(target) as unknown)
        : value
    },
  })
  const usage = (): Usage => {
    const { user, system } = process.cpuUsage()
    return { cpu: (user + system) / 1e6, ...counts }
  }
  return { backend: proxy, usage }
}

async function followerChild(): Promise<void> {
  const mode = process.env['BENCH_CLUSTER_MODE'] as Mode
  const backend = postgresBackend({
    url: PG_URL,
    schema: process.env['BENCH_CLUSTER_SCHEMA'] ?? '',
    follow: true,
  })
  const { backend: instrumented, usage } = instrument(backend, mode === 'doorbell')
  const ds = await openDataspace({
    backend: instrumented,
    followPollMs: POLL_MS,
  })
  const watches = new Map<string, TimedWatch>()
  answerParent('follower child', async (message: ToChild): Promise<FromChild | undefined> => {
    switch (message.type) {
      case 'watch':
        watches.set(message.kind, await TimedWatch.open(ds, message.kind))
        return { type: 'watching' }
      case 'collect': {
        const collected = await watches.get(message.kind)?.collect(message.count, message.timeoutMs)
        watches.delete(message.kind)
        return { type: 'collected', latencies: [], resets: 0, ...collected }
      }
      case 'catch-up': {
        const start = process.hrtime.bigint()
        const deadline = Date.now() + 60_000
        while (ds.revision < message.revision && Date.now() < deadline) await sleep(1)
        const ms = Number(process.hrtime.bigint() - start) / 1e6
        return { type: 'caught-up', ms, revision: ds.revision }
      }
      case 'usage':
        return { type: 'used', usage: usage() }
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

/** A follower child as the parent sees it: one request at a time, ended by its pid. */
export class FollowerProcess {
  readonly mode: Mode
  readonly #channel: ChildChannel<ToChild, FromChild>

  private constructor(mode: Mode, channel: ChildChannel<ToChild, FromChild>) {
    this.mode = mode
    this.#channel = channel
  }

  static async start(schema: string, mode: Mode): Promise<FollowerProcess> {
    const channel = await ChildChannel.fork<ToChild, FromChild>('follower child', import.meta.url, {
      BENCH_CLUSTER_CHILD: '1',
      BENCH_CLUSTER_SCHEMA: schema,
      BENCH_CLUSTER_MODE: mode,
    })
    return new FollowerProcess(mode, channel)
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

  /** How long after this call the follower reached `revision` (it may be there already). */
  async catchUp(revision: number): Promise<number> {
    const { ms, revision: reached } = await this.#channel.request(
      { type: 'catch-up', revision },
      'caught-up',
    )
    if (reached < revision) throw new Error(`follower at ${reached}, short of ${revision}`)
    return ms
  }

  /** What the child did so far (CPU, rings, feed reads). */
  async usage(): Promise<Usage> {
    return (await this.#channel.request({ type: 'usage' }, 'used')).usage
  }

  async stop(): Promise<void> {
    await this.#channel.stop({ type: 'stop' })
  }
}

if (process.env['BENCH_CLUSTER_CHILD'] === '1') await followerChild()
