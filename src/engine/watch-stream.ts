import type { CompiledSelector } from './compiled-selector.js'
import type { DurableGate } from '../streams/durable-gate.js'
import type { ByteMeter } from './memory-account.js'
import { QueuedStream } from '../streams/queued-stream.js'
import { eventBytes } from './record-bytes.js'
import type { Subscriber } from './watch-hub.js'
import type { CloseReason, Watch, WatchEvent } from '../model/types.js'

/** Counters the dataspace keeps about its watches (what metrics will read). */
export interface WatchCounters {
  resets: number
  /** Of `resets`, those because a queue passed its byte cap. */
  byteResets: number
  droppedMessages: number
}

/**
 * Makes a watch's snapshot: returns it now, or returns `undefined` and later calls `deliver`
 * (synchronously, at the revision the snapshot is of) or `fail`. A non-resident kind's snapshot
 * is read from the backend, so it comes later.
 */
export type SnapshotSource = (later: {
  deliver(event: WatchEvent): void
  fail(error: unknown): void
}) => WatchEvent | undefined

/**
 * A public watch: a subscriber whose events go into a queue bounded in events and in estimated
 * bytes. When state events would overflow the queue, everything queued is discarded and
 * replaced by `reset` + a fresh `snapshot` (the Kubernetes relist): a slow watcher is never
 * silently skipped. Messages carry no state, so an overflowing message is dropped and counted
 * instead, and the count rides on the next event.
 */
export class WatchStream<T = unknown>
  extends QueuedStream<WatchEvent<T>>
  implements Subscriber, Watch<T>
{
  readonly kind: string
  readonly selector: CompiledSelector
  readonly #bufferSize: number
  readonly #bufferBytes: number
  readonly #snapshot: SnapshotSource
  readonly #counters: WatchCounters
  #droppedMessages = 0
  /** The snapshot being read, while it is; events meanwhile are in it, except messages. */
  #loading: object | undefined
  /** The revision of the last snapshot queued: state events up to it are already in it. */
  #snapshotAt = -1
  #held: WatchEvent[] = []

  constructor(options: {
    kind: string
    selector: CompiledSelector
    bufferSize: number
    /** The queue's byte cap; `meter` totals every watch queue's bytes. */
    bufferBytes: number
    meter: ByteMeter
    snapshot: SnapshotSource
    counters: WatchCounters
    onClose: (reason: CloseReason) => void
    /** Holds events until durable (a durable backend); see durable-gate.ts. */
    gate?: DurableGate | undefined
  }) {
    super(options.onClose, { measure: eventBytes, meter: options.meter }, options.gate)
    this.kind = options.kind
    this.selector = options.selector
    this.#bufferSize = options.bufferSize
    this.#bufferBytes = options.bufferBytes
    this.#snapshot = options.snapshot
    this.#counters = options.counters
  }

  get capacity(): number {
    return this.#bufferSize
  }

  onEvents(events: WatchEvent[]): void {
    if (this.done) return
    if (this.#loading !== undefined) {
      // State events before the snapshot is taken are part of it; messages wait for it.
      for (const event of events) {
        if (event.type !== 'message') continue
        if (this.#held.length < this.#bufferSize) this.#held.push(event)
        else this.#dropMessages(1)
      }
      return
    }
    // One call holds one commit's events. A commit the snapshot already shows (a replica that
    // started over tells its observers the difference after its watches re-snapshot) is
    // skipped, but for its messages.
    const first = events[0]
    if (
      (first?.type === 'asserted' || first?.type === 'retracted') &&
      first.revision <= this.#snapshotAt
    ) {
      events = events.filter((event) => event.type === 'message')
      if (events.length === 0) return
    }
    const fitsCount = this.length + events.length <= this.#bufferSize
    // An empty queue takes any one batch: a commit larger than the cap must still be seen. So
    // the batch is weighed only behind a backlog, not on every commit to a watcher keeping up.
    const fitsBytes = this.length === 0 || this.bytes + weight(events) <= this.#bufferBytes
    if (fitsCount && fitsBytes) {
      for (const event of events) this.#push(event)
      return
    }
    if (events.every((event) => event.type === 'message')) {
      this.#dropMessages(events.length)
      return
    }
    if (!fitsBytes) this.#counters.byteResets++
    this.resync('overflow')
  }

  /** Discards what is queued and starts over from `reset` + a snapshot of the current state. */
  resync(reason: 'overflow' | 'history-gone'): void {
    if (reason === 'overflow') this.#counters.resets++
    const lost = this.clear().filter((event) => event.type === 'message').length
    if (lost > 0) this.#dropMessages(lost)
    this.#push({ type: 'reset', reason })
    this.beginSnapshot()
  }

  /** Queues the snapshot, now or when it has been read. */
  beginSnapshot(): void {
    const token = {}
    this.#loading = token
    this.#held = []
    const now = this.#snapshot({
      deliver: (event) => {
        if (this.#loading !== token || this.done) return
        this.#loading = undefined
        this.#push(event)
        const held = this.#held
        this.#held = []
        for (const message of held) this.#push(message)
      },
      fail: (error) => {
        if (this.#loading === token && !this.done) this.end({ error })
      },
    })
    if (now !== undefined) {
      this.#loading = undefined
      this.#push(now)
    }
  }

  #dropMessages(count: number): void {
    this.#droppedMessages += count
    this.#counters.droppedMessages += count
  }

  #push(event: WatchEvent | WatchEvent<T>): void {
    if (event.type === 'snapshot') this.#snapshotAt = event.revision
    if (this.#droppedMessages > 0) {
      event = { ...event, dropped: this.#droppedMessages }
      this.#droppedMessages = 0
    }
    this.push(event as WatchEvent<T>)
  }
}

function weight(events: readonly WatchEvent[]): number {
  let bytes = 0
  for (const event of events) bytes += eventBytes(event)
  return bytes
}
