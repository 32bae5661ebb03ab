import { QueuedStream } from '../streams/index.js'
import type { DataspaceError } from '../errors/index.js'
import type { OperationName } from '../protocol/index.js'
import type { Connection, StreamSubscription } from './connection.js'

type Args = Record<string, unknown>

/** How one kind of server stream is opened, resumed and bounded on the client. */
export interface StreamSpec<T> {
  readonly op: OperationName
  /**
   * Arguments to open the stream: `fresh` on the first open and after an overflow, otherwise a
   * re-open after a reconnect (resume from the last revision seen, where the stream can).
   */
  args(fresh: boolean): Args
  /** Events to deliver for one received event; `reopened` is true for the first batch after a re-open. */
  accept(event: T, reopened: boolean): readonly T[]
  /**
   * What to do when the consumer falls `bufferSize` events behind: `resync` starts over with a
   * `reset` event and a fresh open; `drop` discards the event (messages: nothing to resnapshot).
   */
  readonly overflow:
    | { readonly policy: 'resync'; readonly reset: T }
    | { readonly policy: 'drop'; withDropped(item: T, dropped: number): T }
  readonly bufferSize: number
}

/**
 * A server stream as a local {@link QueuedStream}: re-opened by the connection after every
 * reconnect (resuming where the spec can), bounded on the client too, and ended with the
 * server's error if the server refuses it (the first `next()` rejects, as `for await` expects).
 */
export class RemoteStream<T> extends QueuedStream<T> implements StreamSubscription {
  readonly #connection: Connection
  readonly #spec: StreamSpec<T>
  #fresh = true
  #reopened = false
  #error: DataspaceError | undefined
  /** Bumped by every resync: the rest of a batch from the abandoned stream is skipped. */
  #generation = 0
  /** Events dropped by the `drop` policy since the last delivered one. */
  #dropped = 0

  constructor(connection: Connection, spec: StreamSpec<T>, signal?: AbortSignal) {
    super(() => connection.unsubscribe(this))
    this.#connection = connection
    this.#spec = spec
    if (signal?.aborted === true) {
      this.end('aborted')
      return
    }
    signal?.addEventListener('abort', () => this.end('aborted'), { once: true })
    connection.subscribe(this)
  }

  get op(): OperationName {
    return this.#spec.op
  }

  args(): Args {
    const args = this.#spec.args(this.#fresh)
    this.#reopened = !this.#fresh
    this.#fresh = false
    return args
  }

  onEvents(events: readonly unknown[]): void {
    const reopened = this.#reopened
    this.#reopened = false
    const generation = this.#generation
    for (const event of events) {
      for (const item of this.#spec.accept(event as T, reopened)) {
        if (this.#generation !== generation || this.done) return
        this.#deliver(item)
      }
    }
  }

  onEnd(reason: string, error?: DataspaceError): void {
    if (error !== undefined) {
      this.#error = error
      this.end({ error })
      return
    }
    this.end(reason === 'owner-exit' || reason === 'dataspace-closed' ? reason : 'closed')
  }

  restart(): void {
    const overflow = this.#spec.overflow
    if (overflow.policy !== 'resync' || this.done) return
    // The server may have restarted: what was delivered may be gone, so the consumer starts over.
    const reset = overflow.reset as { readonly reason?: unknown }
    this.push(('reason' in reset ? { ...reset, reason: 'history-gone' } : reset) as T)
    this.#fresh = true
  }

  override async next(): Promise<IteratorResult<T, undefined>> {
    const result = await super.next()
    if (result.done === true && this.#error !== undefined) {
      const error = this.#error
      this.#error = undefined
      throw error
    }
    return result
  }

  #deliver(item: T): void {
    const overflow = this.#spec.overflow
    if (this.length < this.#spec.bufferSize) {
      if (overflow.policy === 'drop' && this.#dropped > 0) {
        item = overflow.withDropped(item, this.#dropped)
        this.#dropped = 0
      }
      this.push(item)
      return
    }
    if (overflow.policy === 'drop') {
      this.#dropped++
      return
    }
    // Start over, as the engine does for a watcher that falls behind: reset, then a new snapshot.
    this.#generation++
    this.clear()
    this.push(overflow.reset)
    this.#connection.unsubscribe(this)
    this.#fresh = true
    this.#connection.subscribe(this)
  }
}
