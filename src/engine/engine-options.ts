import type { Backend } from './ports/backend.js'
import { resolveByteBounds } from './memory-account.js'
import type { ByteBounds } from './memory-account.js'
import { checkPositive, DEFAULT_MAX_VALUE_BYTES } from '../model/validate.js'

/** Options of {@link createDataspace}. Every bound has a default; all are per dataspace. */
export interface DataspaceOptions {
  /**
   * The node name in pids (`<node>/<name>#<n>`); default `local`, and on a follower
   * `follower-<8 hex digits>`, so that its pids never equal the writer's.
   */
  readonly node?: string
  /**
   * Where commits become durable (`docs/backends.md`): `memory` (default), or a backend such as
   * `sqliteBackend({ path })`. `createDataspace` takes backends that load synchronously (memory,
   * SQLite); `openDataspace` takes any (PostgreSQL loads over the network).
   */
  readonly backend?: 'memory' | Backend
  /** Changes kept for watch resume and consistent pagination (default 100 000). */
  readonly historySize?: number
  /** Default per-watch queue bound in events (default 10 000). */
  readonly watchBufferSize?: number
  /** Per-process mailbox bound in messages (default 10 000). */
  readonly mailboxSize?: number
  /**
   * The largest value a client may hand the engine, as the UTF-8 size of its JSON encoding
   * (default 1 MiB): record data, messages, metadata, KV values. Larger is `TooLarge`.
   */
  readonly maxValueBytes?: number
  /**
   * The most estimated bytes the engine may hold: resident records, the history and every watch
   * queue and mailbox (docs/server.md, "Memory"). A write that would grow the records past it
   * is `TooLarge` with `limit: 'memoryBudgetBytes'`; retracts, deletes, expiries and exits always
   * work. Default: half of V8's heap limit (`v8.getHeapStatistics().heap_size_limit`).
   */
  readonly memoryBudgetBytes?: number
  /**
   * Estimated bytes of old versions the history keeps for watch resume and pagination
   * (default ⅛ of the budget, at most 256 MiB; at most half the budget). The oldest commits
   * go first; a watch resuming from before them gets `reset` + a snapshot.
   */
  readonly historyBytes?: number
  /**
   * Default per-watch queue bound in estimated bytes (default 1/64 of the budget, from 64 KiB
   * to 64 MiB): a watch whose unread events pass it is reset (`reset` + snapshot).
   */
  readonly watchBufferBytes?: number
  /** Per-process mailbox bound in estimated bytes (default 1/64 of the budget, 64 KiB–16 MiB). */
  readonly mailboxBytes?: number
  /**
   * How long a write waits for a durable backend before it fails `Unavailable` (default 10 s);
   * the commit is still retried and may be applied later.
   */
  readonly durableTimeoutMs?: number
  /**
   * A follower (a backend opened with `follow: true`, docs/cluster.md): how often it reads the
   * writer's feed when no doorbell rang, in ms (default 250). A doorbell wakes it at once.
   */
  readonly followPollMs?: number
  /** Where a durable backend's warnings go (failed writes being retried); default `console.warn`. */
  readonly log?: { warn(message: string, fields?: Record<string, unknown>): void }
}

/** Counters for observability; metrics (and tests) read them. */
export interface DataspaceStats {
  readonly revision: number
  readonly records: number
  readonly kinds: number
  readonly processes: number
  readonly watchers: number
  readonly watchResets: number
  readonly droppedWatchMessages: number
  readonly droppedMailboxMessages: number
  readonly historyFloor: number
  /** Estimated bytes of old versions held by the history (at most `historyBytes` + one commit). */
  readonly historyBytes: number
  /** Commits dropped from the history to stay within its caps (changes or bytes). */
  readonly historyTrimmedCommits: number
  /** Of `watchResets`, those because a queue passed its byte cap or the budget shed it. */
  readonly watchByteResets: number
  /** Estimated bytes of resident records. */
  readonly recordBytes: number
  /** Estimated bytes queued in every watch. */
  readonly watchQueueBytes: number
  /** Estimated bytes queued in every mailbox. */
  readonly mailboxBytes: number
  /** Everything the budget counts: records, history, watch queues and mailboxes. */
  readonly memoryUsedBytes: number
  readonly memoryBudgetBytes: number
  /** Writes refused because they would have grown the records past the budget. */
  readonly memoryRefusedWrites: number
  /** Write turns this cluster node has taken (docs/cluster.md); 0 on any other engine. */
  readonly writeTurns: number
}

/** The bounds of a dataspace, every default filled in and checked. */
export type ResolvedOptions = Readonly<
  Required<
    Pick<DataspaceOptions, 'historySize' | 'watchBufferSize' | 'mailboxSize' | 'maxValueBytes'>
  > &
    ByteBounds
>

/** Fills in and checks the bounds of `options` (each must be a positive integer). */
export function resolveOptions(options: DataspaceOptions): ResolvedOptions {
  return Object.freeze({
    historySize: checkPositive('historySize', options.historySize ?? 100_000),
    watchBufferSize: checkPositive('watchBufferSize', options.watchBufferSize ?? 10_000),
    mailboxSize: checkPositive('mailboxSize', options.mailboxSize ?? 10_000),
    maxValueBytes: checkPositive('maxValueBytes', options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES),
    ...resolveByteBounds(options),
  })
}
