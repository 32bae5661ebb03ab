import { nextBatch } from './stream-batch.js'
import type { CloseReason, Stream } from '../model/types.js'

/**
 * A stream whose items are derived from another's, pulled lazily: it keeps no queue of its
 * own beyond the items one source item maps to, so the source's bound is the bound.
 */
export class MappedStream<A, B> implements Stream<B> {
  readonly #source: Stream<A>
  readonly #map: (item: A) => readonly B[]
  #ready: B[] = []
  readonly closed: Promise<CloseReason>

  /** @param map turns one source item into zero or more items of this stream. */
  constructor(source: Stream<A>, map: (item: A) => readonly B[]) {
    this.#source = source
    this.#map = map
    this.closed = source.closed
  }

  /**
   * Items waiting: the mapped ones not yet taken plus the source's queue (source items, not
   * yet mapped), when the source has one. For metrics, not flow control.
   */
  get length(): number {
    const source = (this.#source as { readonly length?: unknown }).length
    return this.#ready.length + (typeof source === 'number' ? source : 0)
  }

  async next(): Promise<IteratorResult<B, undefined>> {
    for (;;) {
      const ready = this.#ready.shift()
      if (ready !== undefined) return { value: ready, done: false }
      const result = await this.#source.next()
      if (result.done === true) return { value: undefined, done: true }
      this.#ready = [...this.#map(result.value)]
    }
  }

  /** The items of the source's next batch (see {@link nextBatch}), mapped. */
  async nextBatch(): Promise<B[] | undefined> {
    if (this.#ready.length > 0) {
      const ready = this.#ready
      this.#ready = []
      return ready
    }
    for (;;) {
      const batch = await nextBatch(this.#source)
      if (batch === undefined) return undefined
      const mapped = batch.flatMap(this.#map)
      if (mapped.length > 0) return mapped
    }
  }

  close(): void {
    this.#ready = []
    this.#source.close()
  }

  async return(): Promise<IteratorResult<B, undefined>> {
    this.close()
    return { value: undefined, done: true }
  }

  [Symbol.asyncIterator](): AsyncIterator<B, undefined> {
    return this
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
    await this.closed
  }
}
