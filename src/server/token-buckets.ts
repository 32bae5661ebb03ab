interface Bucket {
  tokens: number
  /** When `tokens` was last brought up to date (ms, from `performance.now()`). */
  at: number
}

// Idle buckets are swept after this many new ones, so the map stays bounded by activity.
const SWEEP_EVERY = 1024

/**
 * Token buckets by key: each holds up to `burst` tokens and refills at `rate` per second. A key
 * that has none yet starts full; a bucket that has refilled is forgotten (it would start full
 * again), so the map holds only keys active within the last `burst / rate` seconds.
 */
export class TokenBuckets {
  readonly #rate: number
  readonly #burst: number
  readonly #buckets = new Map<string, Bucket>()
  #created = 0

  constructor(rate: number, burst: number) {
    this.#rate = rate
    this.#burst = burst
  }

  /** Takes one token from `id`'s bucket: `undefined` when taken, else the ms to wait for one. */
  take(id: string): number | undefined {
    const bucket = this.#refill(id, true) as Bucket
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return undefined
    }
    return this.#wait(bucket)
  }

  /** The ms until `id` has a token, or `undefined` when it has one now; takes nothing. */
  wait(id: string): number | undefined {
    const bucket = this.#refill(id, false)
    return bucket === undefined || bucket.tokens >= 1 ? undefined : this.#wait(bucket)
  }

  forget(id: string): void {
    this.#buckets.delete(id)
  }

  #wait(bucket: Bucket): number {
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / this.#rate))
  }

  #refill(id: string, create: boolean): Bucket | undefined {
    const now = performance.now()
    let bucket = this.#buckets.get(id)
    if (bucket === undefined) {
      if (!create) return undefined
      if (++this.#created % SWEEP_EVERY === 0) this.#sweep(now)
      bucket = { tokens: this.#burst, at: now }
      this.#buckets.set(id, bucket)
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) * this.#rate) / 1000)
      bucket.at = now
    }
    return bucket
  }

  // Drops buckets that have refilled: forgetting them changes nothing.
  #sweep(now: number): void {
    for (const [id, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) * this.#rate) / 1000 >= this.#burst) {
        this.#buckets.delete(id)
      }
    }
  }
}
