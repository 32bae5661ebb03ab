import { getHeapStatistics } from 'node:v8'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Dataspace } from '../dataspace.js'
import { LIMIT_NAMES } from './limits.js'
import type { LimitName } from './limits.js'

/** What the scrape-time collectors read; the server passes live getters. */
export interface MetricsSources {
  readonly ds: Dataspace
  readonly sessions: () => number
  readonly sseStreams: () => number
  readonly slowConsumerCloses: () => number
  readonly wsConnections: () => number
  /** Events queued, not yet sent, over every open WebSocket and SSE stream. */
  readonly queueDepth: () => number
  /** Live nodes of the cluster (this one included); `undefined` when they cannot be read. */
  readonly liveNodes: () => Promise<number | undefined>
}

/** What happens to sessions, as `dataspace_session_events_total{event}` counts it. */
export type SessionEvent = 'opened' | 'resumed' | 'expired' | 'ended'

/**
 * The server's Prometheus metrics, in a registry of its own (never prom-client's global one, so
 * two servers in one process, as in tests, do not collide). Engine counters are read from
 * `ds.stats` when scraped, so the hot path pays nothing for them.
 */
export class ServerMetrics {
  readonly registry = new Registry()
  readonly #operations: Counter<'kind' | 'op' | 'outcome'>
  readonly #commitLatency: Histogram
  readonly #limitHits: Counter<'limit'>
  readonly #sessionEvents: Counter<'event'>
  readonly #wsSlowConsumerCloses: Counter
  readonly #wsStreamPauses: Counter
  #pausedStreams = 0

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
    this.#limitHits = new Counter({
      name: 'dataspace_limit_hits_total',
      help: 'Requests, calls or connections refused or closed by a server limit, by limit name',
      labelNames: ['limit'],
      registers,
    })
    // Every limit shows from the first scrape, at 0, so a rate() over it has a baseline.
    for (const limit of LIMIT_NAMES) this.#limitHits.inc({ limit }, 0)
    this.#sessionEvents = new Counter({
      name: 'dataspace_session_events_total',
      help: 'Sessions opened, resumed (WebSocket), expired (lease ran out) and ended otherwise',
      labelNames: ['event'],
      registers,
    })
    this.#wsSlowConsumerCloses = new Counter({
      name: 'dataspace_ws_slow_consumer_closes_total',
      help: 'WebSocket connections closed (4008) because the client did not read its answers',
      registers,
    })
    this.#wsStreamPauses = new Counter({
      name: 'dataspace_ws_stream_pauses_total',
      help: 'Times a WebSocket stream stopped being pumped because the send buffer was full',
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
    gauge('dataspace_ws_connections', 'Open WebSocket connections', sources.wsConnections)
    gauge(
      'dataspace_ws_paused_streams',
      'WebSocket streams paused now because their send buffer is over wsSendBufferBytes',
      () => this.#pausedStreams,
    )
    gauge(
      'dataspace_stream_queue_depth',
      'Events queued in open WebSocket and SSE streams, not yet sent',
      sources.queueDepth,
    )
    gauge('dataspace_watchers', 'Open watches in the engine', () => ds.stats.watchers)
    gauge('dataspace_revision', 'The revision of the last commit', () => ds.stats.revision)
    gauge(
      'dataspace_backend_write_failing_seconds',
      'Seconds since writes to the durable backend began failing (retried), or on a follower its reads of the writer’s feed; 0 while they go through',
      () => {
        const health = ds.backendHealth
        return health?.ok === false ? (Date.now() - health.since) / 1000 : 0
      },
    )
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
    new Gauge({
      name: 'dataspace_cluster_nodes',
      help: 'Live nodes of the cluster, this one included (1 on memory and SQLite)',
      registers,
      async collect() {
        // A database that does not answer leaves the last value (its failure is logged by the
        // heartbeat and shown by /readyz).
        const live = await sources.liveNodes()
        if (live !== undefined) this.set(live)
      },
    })
    this.#memoryMetrics(ds, gauge, counter)
    counter(
      'dataspace_sse_slow_consumer_closes_total',
      'SSE streams closed because the client read too slowly',
      sources.slowConsumerCloses,
    )
  }

  /**
   * The engine's byte accounting against its memory budget (docs/server.md, "Memory"), and the
   * V8 heap it stands for: what an operator watches to see the budget approach.
   */
  #memoryMetrics(
    ds: Dataspace,
    gauge: (name: string, help: string, read: () => number) => void,
    counter: (name: string, help: string, read: () => number) => void,
  ): void {
    gauge(
      'dataspace_memory_budget_bytes',
      'The engine memory budget (memoryBudgetBytes): writes that would grow records past it are refused',
      () => ds.stats.memoryBudgetBytes,
    )
    gauge(
      'dataspace_memory_used_bytes',
      'Estimated bytes the engine holds: records, history, watch queues and mailboxes',
      () => ds.stats.memoryUsedBytes,
    )
    new Gauge({
      name: 'dataspace_memory_bytes',
      help: 'Estimated bytes the engine holds, by part',
      labelNames: ['part'],
      registers: [this.registry],
      collect() {
        const stats = ds.stats
        this.set({ part: 'records' }, stats.recordBytes)
        this.set({ part: 'history' }, stats.historyBytes)
        this.set({ part: 'watch_queues' }, stats.watchQueueBytes)
        this.set({ part: 'mailboxes' }, stats.mailboxBytes)
      },
    })
    gauge(
      'dataspace_heap_used_bytes',
      'V8 heap in use by the server process (what the budget protects)',
      () => getHeapStatistics().used_heap_size,
    )
    gauge(
      'dataspace_heap_limit_bytes',
      'V8 heap limit of the server process (--max-old-space-size)',
      () => getHeapStatistics().heap_size_limit,
    )
    counter(
      'dataspace_memory_refused_writes_total',
      'Writes refused (TooLarge, limit memoryBudgetBytes) because the memory budget was full',
      () => ds.stats.memoryRefusedWrites,
    )
    counter(
      'dataspace_history_trimmed_commits_total',
      'Commits dropped from the watch history to stay within historySize and historyBytes',
      () => ds.stats.historyTrimmedCommits,
    )
    counter(
      'dataspace_watch_byte_resets_total',
      'Watches reset because their queue passed watchBufferBytes or the budget shed it',
      () => ds.stats.watchByteResets,
    )
    counter(
      'dataspace_cluster_write_turns_total',
      'Write turns this cluster node took (serve --cluster); 0 on a single server or a follower',
      () => ds.stats.writeTurns,
    )
  }

  /** Counts one operation; `outcome` is `ok` or the error code. */
  operation(kind: string, op: string, outcome: string): void {
    this.#operations.inc({ kind, op, outcome })
  }

  /** Counts one hit of a server limit. */
  limitHit(limit: LimitName): void {
    this.#limitHits.inc({ limit })
    if (limit === 'wsMaxBufferBytes') this.#wsSlowConsumerCloses.inc()
  }

  /** Counts a session event. */
  sessionEvent(event: SessionEvent): void {
    this.#sessionEvents.inc({ event })
  }

  /** A WebSocket stream stopped (`+1`) or resumed (`-1`) pumping because of its send buffer. */
  streamPaused(delta: 1 | -1): void {
    this.#pausedStreams += delta
    if (delta === 1) this.#wsStreamPauses.inc()
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
