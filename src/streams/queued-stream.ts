import { NeverDurable, revisionOf, whenDurable } from './durable-gate.js'
import type { DurableGate } from './durable-gate.js'
import type { CloseReason, Stream } from '../model/types.js'

interface Waiter<T> {
  resolve(result: IteratorResult<T, undefined>): void
}

/** A running total of estimated bytes, shared by many queues of one sort. */
export interface ByteMeter {
  bytes: number
}

/** How a queue weighs its items: an estimate per item, and a total shared with its peers. */
export interface Metering<T> {
  // A method, not a function property: bivariant, so a WatchStream<T> is a WatchStream<unknown>.
  measure(item: T): number
  readonly meter: ByteMeter
}

/**
 * The one queue behind every stream (watches, mailboxes, facade monitors), after nats.js's
 * QueuedIterator: producers `push` synchronously, one consumer pulls with `for await`.
 *
 * The queue itself does not enforce a bound: its producer decides what to do when `length` or
 * `bytes` reaches its limit (a watch resets and resnapshots, a mailbox drops and counts),
 * because the right overflow policy depends on what the items mean. A metered queue keeps the
 * estimated bytes of what it holds, here and in a meter shared with its peers (the engine's
 * memory account).
 */
export class QueuedStream<T> implements Stream<T> {
  #items: T[] = []
  #head = 0
  #waiter: Waiter<T> | undefined
  #done = false
  #bytes = 0
  #resolveClosed!: (reason: CloseReason) => void
  readonly closed: Promise<CloseReason>
  readonly #onClose: ((reason: CloseReason) => void) | undefined
  readonly #metering: Metering<T> | undefined
  readonly #gate: DurableGate | undefined

  /**
   * @param onClose runs once, synchronously, when the stream ends (unsubscribe hooks go here).
   * @param metering weighs queued items in bytes (see record-bytes.ts)
   * @param gate holds each item that carries a `revision` until that revision is durable (the
   *   engine's streams on a durable backend; see durable-gate.ts). Items wait in order, so
   *   nothing behind a held event overtakes it.
   */
  constructor(onClose?: (reason: CloseReason) => void, metering?: Metering<T>, gate?: DurableGate) {
    this.#onClose = onClose
    this.#metering = metering
    this.#gate = gate
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
  }

  /** Items waiting for the consumer. */
  get length(): number {
    return this.#items.length - this.#head
  }

  /** Estimated bytes of the items waiting (0 unless metered). */
  get bytes(): number {
    return this.#bytes
  }

  /** What `item` weighs in this queue (0 unless metered). */
  weigh(item: T): number {
    return this.#metering === undefined ? 0 : this.#metering.measure(item)
  }

  #add(bytes: number): void {
    if (bytes === 0 || this.#metering === undefined) return
    this.#bytes += bytes
    this.#metering.meter.bytes += bytes
  }

  /** Forgets the weight of everything queued (it was taken or dropped). */
  #emptied(): void {
    this.#add(-this.#bytes)
  }

  get done(): boolean {
    return this.#done
  }

  /** Queues one item; returns false (and drops it) if the stream has ended. */
  push(item: T): boolean {
    if (this.#done) return false
    const waiter = this.#waiter
    if (waiter !== undefined) {
      this.#waiter = undefined
      waiter.resolve({ value: item, done: false })
      return true
    }
    this.#items.push(item)
    this.#add(this.weigh(item))
    return true
  }

  /** Drops every queued item, returning them (the caller counts what was lost). */
  clear(): T[] {
    const dropped = this.#items.slice(this.#head)
    this.#items = []
    this.#head = 0
    this.#emptied()
    return dropped
  }

  /** Ends the stream: queued items are discarded and the consumer's pending `next()` returns done. */
  end(reason: CloseReason = 'closed'): void {
    if (this.#done) return
    this.#done = true
    this.#items = []
    this.#head = 0
    this.#emptied()
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.resolve({ value: undefined, done: true })
    this.#onClose?.(reason)
    this.#resolveClosed(reason)
  }

  close(): void {
    this.end('closed')
  }

  next(): Promise<IteratorResult<T, undefined>> {
    const taken = this.#take()
    if (this.#gate === undefined) return taken
    return taken.then((result) =>
      result.done === true
        ? result
        : skipNeverDurable(whenDurable(this.#gate, revisionOf([result.value]), result), () =>
            this.next(),
          ),
    )
  }

  #take(): Promise<IteratorResult<T, undefined>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head] as T
      this.#items[this.#head] = undefined as T // release for GC before compaction
      this.#head++
      if (this.#head === this.#items.length) {
        this.#items = []
        this.#head = 0
        // Exactly zero when empty, whatever drift the estimates had.
        this.#emptied()
      } else {
        this.#add(-Math.min(this.#bytes, this.weigh(value)))
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
          this.#items = this.#items.slice(this.#head)
          this.#head = 0
        }
      }
      return Promise.resolve({ value, done: false })
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true })
    if (this.#waiter !== undefined) {
      return Promise.reject(
        new Error('a stream has one consumer: next() called while another next() is pending'),
      )
    }
    return new Promise((resolve) => {
      this.#waiter = { resolve }
    })
  }

  /**
   * Everything queued, waiting for at least one item; `undefined` once the stream has ended.
   * Producers push a commit's events synchronously, so a batch taken when the consumer wakes
   * holds whole commits: the network server frames and resumes on these boundaries.
   */
  async nextBatch(): Promise<T[] | undefined> {
    let batch: T[]
    if (this.length === 0) {
      const first = await this.#take()
      if (first.done === true) return undefined
      batch = [first.value, ...this.#takeAll()]
    } else {
      batch = this.#takeAll()
    }
    // Revisions only grow along a stream: the batch is released when its last commit is durable.
    if (this.#gate === undefined) return batch
    return skipNeverDurable(whenDurable(this.#gate, revisionOf(batch), batch), () =>
      this.nextBatch(),
    )
  }

  #takeAll(): T[] {
    const items = this.#items.slice(this.#head)
    this.#items = []
    this.#head = 0
    this.#emptied()
    return items
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.end('closed')
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    return this
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.end('closed')
    await this.closed
  }
}

/**
 * An item whose commit will never be stored (a cluster node dropped it and starts over, which
 * resets its watches: docs/cluster.md) is not delivered: the consumer gets what follows, the
 * `reset` and snapshot included. Any other failure passes through.
 */
function skipNeverDurable<R>(released: R | Promise<R>, again: () => Promise<R>): Promise<R> {
  return Promise.resolve(released).catch((error: unknown) => {
    if (error instanceof NeverDurable) return again()
    throw error
  })
}
