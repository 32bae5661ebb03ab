import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Dataspace } from '../engine/index.js'

/** What the scrape-time collectors read; the server passes live getters. */
export interface MetricsSources {
  readonly ds: Dataspace
  readonly sessions: () => number
  readonly sseStreams: () => number
  readonly slowConsumerCloses: () => number
}

/**
 * The server's Prometheus metrics, in a registry of its own (never prom-client's global one, so
 * two servers in one process, as in tests, do not collide). Engine counters are read from
 * `ds.stats` when scraped, so the hot path pays nothing for them.
 */
export class ServerMetrics {
  readonly registry = new Registry()
  readonly #operations: Counter<'kind' | 'op' | 'outcome'>
  readonly #commitLatency: Histogram

  constructor(sources: MetricsSources) {
    const registers = [this.registry]
    this.#operations = new Counter({
      name: 'dataspace_operations_total',
      help: 'Operations handled, by kind, operation and outcome (ok or the error code)',
      labelNames: ['kind', 'op', 'outcome'],
      registers,
    })
    this.#commitLatency = new Histogram({
      name: 'dataspace_commit_latency_seconds',
      help: 'Time to handle a write request, from routing to the answer',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    })
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read())
        },
      })
    }
    // Counters owned elsewhere: set to their current total at scrape time.
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    }
    const { ds } = sources
    gauge('dataspace_sessions', 'Live sessions (remote processes with a lease)', sources.sessions)
    gauge('dataspace_sse_streams', 'Open SSE responses', sources.sseStreams)
    gauge('dataspace_watchers', 'Open watches in the engine', () => ds.stats.watchers)
    gauge('dataspace_revision', 'The revision of the last commit', () => ds.stats.revision)
    counter(
      'dataspace_watch_resets_total',
      'Watches reset by the engine (history gone or queue overflow)',
      () => ds.stats.watchResets,
    )
    counter(
      'dataspace_dropped_watch_messages_total',
      'Transient messages dropped from full watch queues',
      () => ds.stats.droppedWatchMessages,
    )
    counter(
      'dataspace_dropped_mailbox_messages_total',
      'Messages dropped from full process mailboxes',
      () => ds.stats.droppedMailboxMessages,
    )
    counter(
      'dataspace_sse_slow_consumer_closes_total',
      'SSE streams closed because the client read too slowly',
      sources.slowConsumerCloses,
    )
  }

  /** Counts one operation; `outcome` is `ok` or the error code. */
  operation(kind: string, op: string, outcome: string): void {
    this.#operations.inc({ kind, op, outcome })
  }

  /** Records how long a write request took, in seconds. */
  commitLatency(seconds: number): void {
    this.#commitLatency.observe(seconds)
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
