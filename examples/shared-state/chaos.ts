/**
 * Seeded randomness and injected faults. Every run of the example draws from ONE seeded
 * generator, and everything it awaits is a microtask or a `setImmediate` turn (no timers, no
 * I/O), so a seed replays the same interleaving: a failure found by a random run can be rerun.
 */

/** A generator of floats in [0, 1). */
export type Rng = () => number

/** mulberry32: tiny, fast and good enough to shuffle an interleaving; not for cryptography. */
export function createRng(seed: number): Rng {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `value` (say, `process.env.SEED`) as a seed if it is an integer, else a fresh one: print it to replay. */
export function seedFrom(value: string | undefined): number {
  const parsed = value === undefined ? NaN : Number(value)
  return Number.isSafeInteger(parsed) ? parsed >>> 0 : (Math.random() * 2 ** 32) >>> 0
}

/** Thrown by {@link Chaos.maybeCrash}: the stand-in for a panic inside a handler. */
export class InjectedCrash extends Error {
  constructor(where: string) {
    super(`injected crash ${where}`)
    this.name = 'InjectedCrash'
  }
}

/** How hostile a run is. */
export interface ChaosOptions {
  readonly seed: number
  /** Probability that a yield point gives up the turn (default 0). */
  readonly yieldRate?: number
  /** At most this many `setImmediate` turns per yield (default 3). */
  readonly maxYields?: number
  /** Probability that a crash point throws {@link InjectedCrash} (default 0). */
  readonly crashRate?: number
}

/**
 * Yield points and crash points, drawn from one seeded generator. Yields stand in for the awaits
 * of real handlers (a database call, an HTTP request): each one lets every other process run, so
 * a read and the write based on it are separated by other processes' commits — the situation
 * locks exist for, here met with compare-and-swap instead.
 */
export class Chaos {
  readonly seed: number
  readonly #rng: Rng
  readonly #yieldRate: number
  readonly #maxYields: number
  readonly #crashRate: number

  constructor(options: ChaosOptions) {
    this.seed = options.seed
    this.#rng = createRng(options.seed)
    this.#yieldRate = options.yieldRate ?? 0
    this.#maxYields = options.maxYields ?? 3
    this.#crashRate = options.crashRate ?? 0
  }

  /** A float in [0, 1) from the run's generator. */
  random(): number {
    return this.#rng()
  }

  /** Maybe gives up the turn for a few `setImmediate` turns. */
  async maybeYield(): Promise<void> {
    if (this.#yieldRate === 0 || this.#rng() >= this.#yieldRate) return
    const turns = 1 + Math.floor(this.#rng() * this.#maxYields)
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve))
  }

  /** Maybe throws {@link InjectedCrash}; `where` says which crash point, for the log. */
  maybeCrash(where: string): void {
    if (this.#crashRate > 0 && this.#rng() < this.#crashRate) throw new InjectedCrash(where)
  }
}
