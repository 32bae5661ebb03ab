/**
 * One variant of scenario 1: a dataspace with its watchers attached and a base of records, that
 * times rounds of asserts. Each round's records are retracted again, untimed, so that every round
 * writes into a store of the same size however many rounds run, and the heap stays small enough
 * for the variants to be measured side by side (interleaved) rather than one after another.
 */
import { createDataspace } from '../src/index.js'
import type { Dataspace, Op, Process, Watch } from '../src/index.js'
import { assertOps, BATCH } from './fixtures.js'
import { msSince, now, timeMs, turn } from './lib.js'

const KIND = 'bench.route'

/** What scenario 1 varies: the watchers, and whether the asserted ids match them. */
export interface Variant {
  readonly name: string
  readonly watchers: number
  /** The id glob of watcher `i`. */
  readonly glob: (i: number) => string
  /** The id of the `n`-th asserted record. */
  readonly id: (n: number) => string
  /** Events each assert should cause, summed over all watchers. */
  readonly fanOut: number
  /** Fan-out variants deliver `watchers` events per assert: fewer asserts keep the run short. */
  readonly scale: number
}

/** The record data of every variant: a small object, like a route's. */
function data(n: number): unknown {
  return { path: `/r/${n}`, pool: `p${n % 1000}`, port: 8000 + (n % 100) }
}

/** A variant's dataspace, ready to time rounds of asserts. */
export class VariantRun {
  readonly variant: Variant
  readonly #ds: Dataspace
  readonly #proc: Process
  readonly #seen = { asserted: 0, retracted: 0, other: 0 }
  /** Watchers whose loop failed: reported by `problem()`, not dropped. */
  readonly #watchErrors: string[] = []
  #attachMs = 0
  /** Asserts timed so far (each retracted again): what the watchers should have seen. */
  #asserts = 0
  /** The next id number; the base records took the first ones. */
  #next = 0

  private constructor(variant: Variant) {
    this.variant = variant
    this.#ds = createDataspace()
    this.#proc = this.#ds.process('writer')
  }

  /**
   * Attaches the variant's watchers, each with a consumer as an application would run, then
   * asserts `base` records whose ids (`baseId`) match none of them.
   */
  static async open(
    variant: Variant,
    base: number,
    baseId: (n: number) => string,
  ): Promise<VariantRun> {
    const run = new VariantRun(variant)
    const start = now()
    for (let i = 0; i < variant.watchers; i++) {
      run
        .#consume(run.#ds.watch(KIND, { id: variant.glob(i), snapshot: false }))
        .catch((error: unknown) => run.#watchErrors.push(String(error)))
    }
    run.#attachMs = msSince(start)
    for (let from = 0; from < base; from += BATCH) {
      const size = Math.min(BATCH, base - from)
      await run.#proc.transact({ then: assertOps(KIND, from, size, baseId, data) })
    }
    run.#next = base
    return run
  }

  /** How long attaching the watchers took, in milliseconds. */
  get attachMs(): number {
    return this.#attachMs
  }

  /** Times `count` asserts in `transact` batches of {@link BATCH}; returns asserts per second. */
  async batch(count: number): Promise<number> {
    const first = this.#next
    const batches: Op[][] = []
    for (let from = 0; from < count; from += BATCH) {
      batches.push(assertOps(KIND, first + from, BATCH, this.variant.id, data))
    }
    // The final turn lets the consumers drain what the last commit queued: delivery is part of the cost.
    const ms = await timeMs(async () => {
      for (const then of batches) await this.#proc.transact({ then })
      await turn()
    })
    await this.#retract(first, batches.length * BATCH)
    return (batches.length * BATCH * 1000) / ms
  }

  /** Times `count` single `assert` calls, each awaited; returns asserts per second. */
  async single(count: number): Promise<number> {
    const first = this.#next
    const ids: string[] = []
    const values: unknown[] = []
    for (let n = first; n < first + count; n++) {
      ids.push(this.variant.id(n))
      values.push(data(n))
    }
    const ms = await timeMs(async () => {
      for (let i = 0; i < count; i++) await this.#proc.assert(KIND, ids[i] as string, values[i])
      await turn()
    })
    await this.#retract(first, count)
    return (count * 1000) / ms
  }

  /** A description of what the watchers got that they should not have, if anything. */
  problem(): string | undefined {
    const expected = this.#asserts * this.variant.fanOut
    const seen = this.#seen
    if (this.#watchErrors.length > 0) return `watchers failed: ${this.#watchErrors.join('; ')}`
    if (seen.asserted === expected && seen.retracted === expected && seen.other === 0) return
    return `watchers got ${seen.asserted} asserted and ${seen.retracted} retracted events (expected ${expected} each) and ${seen.other} others (resets)`
  }

  /** Untimed: takes a round's records out again, and lets the watchers drain the retractions. */
  async #retract(first: number, count: number): Promise<void> {
    for (let from = first; from < first + count; from += BATCH) {
      const then: Op[] = []
      for (let n = from; n < Math.min(from + BATCH, first + count); n++) {
        then.push({ op: 'retract', kind: KIND, id: this.variant.id(n) })
      }
      await this.#proc.transact({ then })
    }
    await turn()
    this.#asserts += count
    this.#next = first + count
  }

  async #consume(watch: Watch): Promise<void> {
    for await (const event of watch) {
      if (event.type === 'asserted') this.#seen.asserted++
      else if (event.type === 'retracted') this.#seen.retracted++
      else this.#seen.other++
    }
  }
}
