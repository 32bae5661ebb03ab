/** One scheduled expiry: the record `(kind, id)` expires at `at` if it still has that deadline. */
export interface Expiry {
  readonly at: number
  readonly kind: string
  readonly id: string
}

/**
 * A min-heap of record deadlines. Entries are never removed when a record is overwritten or
 * retracted; instead the engine checks, when an entry comes due, that the record still carries
 * that deadline (lazy deletion keeps writes O(log n) and the heap simple).
 */
export class ExpiryQueue {
  readonly #heap: Expiry[] = []

  get size(): number {
    return this.#heap.length
  }

  /** The earliest deadline, if any. */
  peek(): Expiry | undefined {
    return this.#heap[0]
  }

  push(entry: Expiry): void {
    const heap = this.#heap
    heap.push(entry)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((heap[parent] as Expiry).at <= entry.at) break
      heap[i] = heap[parent] as Expiry
      i = parent
    }
    heap[i] = entry
  }

  /** Removes and returns every entry due at or before `now`, earliest first. */
  popDue(now: number): Expiry[] {
    const due: Expiry[] = []
    while (this.#heap.length > 0 && (this.#heap[0] as Expiry).at <= now) due.push(this.#pop())
    return due
  }

  #pop(): Expiry {
    const heap = this.#heap
    const top = heap[0] as Expiry
    const last = heap.pop() as Expiry
    if (heap.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child =
        right < heap.length && (heap[right] as Expiry).at < (heap[left] as Expiry).at ? right : left
      if ((heap[child] as Expiry).at >= last.at) break
      heap[i] = heap[child] as Expiry
      i = child
    }
    heap[i] = last
    return top
  }
}
