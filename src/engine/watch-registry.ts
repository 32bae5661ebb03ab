import { InvalidArgument } from '../errors/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { DurableGate } from '../streams/durable-gate.js'
import type { ChangeSet, History } from './history.js'
import type { KindStore } from './kind-store.js'
import type { ByteMeter } from './memory-account.js'
import { plan, select } from './query-planner.js'
import type { Transaction, TransactionContext } from './transaction.js'
import type {
  CloseReason,
  DataspaceRecord,
  Watch,
  WatchEvent,
  WatchOptions,
} from '../model/types.js'
import { eventFor, WatchHub } from './watch-hub.js'
import type { Subscriber } from './watch-hub.js'
import { WatchStream } from './watch-stream.js'
import type { SnapshotSource, WatchCounters } from './watch-stream.js'

/** The kind under which every open watch is visible as a record (Syndicate's `Observe`). */
export const WATCH_KIND = '$watch'

/** A synchronous observation of a kind (see `Dataspace.observe`). */
export interface Observation<T = unknown> {
  /** The matching records when the observation began. */
  readonly records: readonly DataspaceRecord<T>[]
  /** The revision of that snapshot. */
  readonly revision: number
  /** Stops the observation; `onCommit` is not called after it returns. */
  close(reason?: CloseReason): void
}

/** What the registry needs from the engine. */
export interface WatchContext extends TransactionContext {
  readonly history: History
  readonly closed: boolean
  /** Holds watch events until durable; `undefined` when every commit is durable at once. */
  readonly gate: DurableGate | undefined
  /** Applies a system commit, now or at a cluster node's next write turn (`CommitPath.system`). */
  system(build: (tx: Transaction) => void): void
  /** Why this engine writes nothing (a follower): its watches publish no `$watch` record. */
  readonly writesRefused: string | undefined
  /** The node's name: in a cluster, `$watch` ids carry it, as pids do, to be unique across nodes. */
  readonly node: string
  readonly clustered: boolean
}

type Snapshot = { type: 'snapshot'; records: DataspaceRecord[]; revision: number }

/**
 * Opens and closes watches and observations: registers them with the hub, gives each its
 * snapshot (or its replay from history) in the same synchronous turn, and publishes each as a
 * `$watch` record while it is open.
 */
export class WatchRegistry {
  readonly hub = new WatchHub()
  readonly counters: WatchCounters = { resets: 0, byteResets: 0, droppedMessages: 0 }
  readonly #context: WatchContext
  readonly #streams = new Set<WatchStream>()
  readonly #observations = new Set<Observation>()
  /** Totals the bytes queued in every watch. */
  readonly #meter: ByteMeter
  #counter = 0
  /** `$watch` records to write, and to retract, in the next `#sync` commit. */
  #toAssert = new Map<string, Readonly<Record<string, string>>>()
  #toRetract = new Set<string>()
  #syncQueued = false

  constructor(context: WatchContext, meter: ByteMeter) {
    this.#context = context
    this.#meter = meter
  }

  /**
   * Resets the watches holding the most queued bytes until at least `bytes` are freed or none
   * hold any: what the engine does before refusing a write for its memory budget, so that
   * watchers that do not read cannot keep writers out. Returns the bytes freed.
   */
  shed(bytes: number): number {
    const before = this.#meter.bytes
    const heavy = [...this.#streams].filter((s) => s.bytes > 0).sort((a, b) => b.bytes - a.bytes)
    for (const stream of heavy) {
      if (before - this.#meter.bytes >= bytes) break
      this.counters.byteResets++
      stream.resync('overflow')
    }
    return before - this.#meter.bytes
  }

  /**
   * Starts every watch over (`reset` + a snapshot of the current state): the history they
   * would resume from is gone (a follower started over from a snapshot).
   */
  resyncAll(): void {
    for (const stream of this.#streams) stream.resync('history-gone')
  }

  /** `snapshot` makes the watch's snapshots; by default, from the kind's store at once. */
  watch<T>(
    kind: string,
    selector: CompiledSelector,
    options: WatchOptions,
    bounds: { readonly bufferSize: number; readonly bufferBytes: number },
    snapshot: SnapshotSource = () => this.snapshot(kind, selector),
  ): Watch<T> {
    const from = options.fromRevision
    if (from !== undefined && (!Number.isSafeInteger(from) || from < 0)) {
      throw new InvalidArgument(`fromRevision must be a non-negative integer, got ${String(from)}`)
    }
    if (options.signal?.aborted === true) {
      const stream = new WatchStream<T>({
        kind,
        selector,
        ...bounds,
        meter: this.#meter,
        snapshot,
        counters: this.counters,
        onClose: () => undefined,
      })
      stream.end('aborted')
      return stream
    }
    const watchId = this.#publish(kind, selector)
    const onAbort = (): void => stream.end('aborted')
    const stream: WatchStream<T> = new WatchStream<T>({
      kind,
      selector,
      ...bounds,
      meter: this.#meter,
      snapshot,
      counters: this.counters,
      gate: this.#context.gate,
      onClose: () => {
        this.hub.remove(stream)
        this.#streams.delete(stream)
        options.signal?.removeEventListener('abort', onAbort)
        this.#withdraw(watchId)
      },
    })
    options.signal?.addEventListener('abort', onAbort, { once: true })
    this.#streams.add(stream)
    if (from === undefined) {
      if (options.snapshot !== false) stream.beginSnapshot()
    } else if (from > this.#context.revision || !this.#context.history.covers(from)) {
      stream.resync('history-gone')
    } else {
      this.#replay(stream, from)
    }
    this.hub.add(stream)
    return stream
  }

  observe<T>(
    kind: string,
    selector: CompiledSelector,
    onCommit: (events: WatchEvent<T>[]) => void,
    onClose?: (reason: CloseReason) => void,
  ): Observation<T> {
    const watchId = this.#publish(kind, selector)
    const subscriber: Subscriber = {
      kind,
      selector,
      onEvents: onCommit,
    }
    const { records, revision } = this.snapshot(kind, selector)
    this.hub.add(subscriber)
    let open = true
    const observation: Observation<T> = {
      records: records as DataspaceRecord<T>[],
      revision,
      close: (reason: CloseReason = 'closed') => {
        if (!open) return
        open = false
        this.hub.remove(subscriber)
        this.#observations.delete(observation)
        this.#withdraw(watchId)
        if (reason !== 'closed') onClose?.(reason)
      },
    }
    this.#observations.add(observation)
    return observation
  }

  /** The records matching `selector` now, as a snapshot event. */
  snapshot(kind: string, selector: CompiledSelector): Snapshot {
    const store: KindStore | undefined = this.#context.store(kind)
    const records = store === undefined ? [] : select(store, selector, plan(store, selector))
    return { type: 'snapshot', records, revision: this.#context.revision }
  }

  dispatch(commit: ChangeSet): void {
    this.hub.dispatch(commit)
  }

  /** Ends every watch and observation (the dataspace is closing). */
  closeAll(reason: CloseReason): void {
    for (const stream of [...this.#streams]) stream.end(reason)
    for (const observation of [...this.#observations]) observation.close(reason)
  }

  /** Replays the history after `from` into a new stream, one batch per commit. */
  #replay(stream: WatchStream<never> | WatchStream, from: number): void {
    for (const commit of this.#context.history.since(from)) {
      const events: WatchEvent[] = []
      for (const change of commit.changes) {
        if (change.kind !== stream.kind) continue
        const event = eventFor(stream, change, commit.revision)
        if (event !== undefined) events.push(event)
      }
      if (events.length > 0) stream.onEvents(events)
    }
  }

  /** Commits a `$watch` record describing the interest; returns its id. */
  #publish(kind: string, selector: CompiledSelector): string | undefined {
    // A follower writes nothing; the writer's `$watch` records are replicated to it.
    if (this.#context.writesRefused !== undefined) return undefined
    const id = this.#context.clustered
      ? `${this.#context.node}:w${++this.#counter}`
      : `w${++this.#counter}`
    const data: Record<string, string> = { kind }
    if (selector.id !== undefined) data['id'] = selector.id.source
    if (selector.fields !== undefined) data['fields'] = selector.fields.toString()
    if (selector.labels !== undefined) data['labels'] = selector.labels.toString()
    if (selector.owner !== undefined) data['owner'] = selector.owner
    this.#toAssert.set(id, Object.freeze(data))
    this.#sync()
    return id
  }

  #withdraw(id: string | undefined): void {
    if (id === undefined || this.#context.closed) return
    // Never written (its publication still waits): nothing to retract.
    if (!this.#toAssert.delete(id)) this.#toRetract.add(id)
    this.#sync()
  }

  /**
   * Writes the `$watch` changes waiting, as ONE system commit: now, or on a cluster node at its
   * next write turn. However many watches open and close meanwhile, one commit is queued (a
   * watch opened and closed before it ran is neither asserted nor retracted), so a client that
   * churns watches while the turn is away grows nothing but these two sets, bounded by its
   * watches.
   */
  #sync(): void {
    if (this.#syncQueued) return
    this.#syncQueued = true
    this.#context.system((tx) => {
      this.#syncQueued = false
      const assert = this.#toAssert
      const retract = this.#toRetract
      this.#toAssert = new Map()
      this.#toRetract = new Set()
      for (const [id, data] of assert) tx.assert({ kind: WATCH_KIND, id, data })
      for (const id of retract) {
        // Read when the commit is staged: on a cluster node that is at its next write turn.
        const record = tx.read(WATCH_KIND, id)
        if (record !== undefined) tx.remove(record, 'retract')
      }
    })
  }
}
