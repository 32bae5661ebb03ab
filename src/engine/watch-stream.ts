import type { CompiledSelector } from './compiled-selector.js'
import { QueuedStream } from './queued-stream.js'
import type { Subscriber } from './watch-hub.js'
import type { CloseReason, Watch, WatchEvent } from './types.js'

/** Counters the dataspace keeps about its watches (what metrics will read). */
export interface WatchCounters {
  resets: number
  droppedMessages: number
}

/**
 * A public watch: a subscriber whose events go into a bounded queue. When state events would
 * overflow the queue, everything queued is discarded and replaced by `reset` + a fresh `snapshot`
 * (the Kubernetes relist): a slow watcher is never silently skipped. Messages carry no state, so
 * an overflowing message is dropped and counted instead, and the count rides on the next event.
 */
export class WatchStream<T = unknown>
  extends QueuedStream<WatchEvent<T>>
  implements Subscriber, Watch<T>
{
  readonly kind: string
  readonly selector: CompiledSelector
  readonly #bufferSize: number
  readonly #snapshot: () => WatchEvent
  readonly #counters: WatchCounters
  #droppedMessages = 0

  constructor(options: {
    kind: string
    selector: CompiledSelector
    bufferSize: number
    snapshot: () => WatchEvent
    counters: WatchCounters
    onClose: (reason: CloseReason) => void
  }) {
    super(options.onClose)
    this.kind = options.kind
    this.selector = options.selector
    this.#bufferSize = options.bufferSize
    this.#snapshot = options.snapshot
    this.#counters = options.counters
  }

  get capacity(): number {
    return this.#bufferSize
  }

  onEvents(events: WatchEvent[]): void {
    if (this.done) return
    if (this.length + events.length <= this.#bufferSize) {
      for (const event of events) this.#push(event)
      return
    }
    if (events.every((event) => event.type === 'message')) {
      this.#dropMessages(events.length)
      return
    }
    this.resync('overflow')
  }

  /** Discards what is queued and starts over from `reset` + a snapshot of the current state. */
  resync(reason: 'overflow' | 'history-gone'): void {
    if (reason === 'overflow') this.#counters.resets++
    const lost = this.clear().filter((event) => event.type === 'message').length
    if (lost > 0) this.#dropMessages(lost)
    this.#push({ type: 'reset', reason })
    this.#push(this.#snapshot())
  }

  #dropMessages(count: number): void {
    this.#droppedMessages += count
    this.#counters.droppedMessages += count
  }

  #push(event: WatchEvent | WatchEvent<T>): void {
    if (this.#droppedMessages > 0) {
      event = { ...event, dropped: this.#droppedMessages }
      this.#droppedMessages = 0
    }
    this.push(event as WatchEvent<T>)
  }
}
