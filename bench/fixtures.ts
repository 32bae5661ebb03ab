/**
 * Data shared by the engine scenarios: how records are made and loaded. Loading always goes
 * through the public API (`transact` batches), so the store, its indexes and the history end up
 * exactly as an application would leave them.
 */
import type { Op, Process } from '../src/index.js'

/** Ops per `transact` when loading: the batch size scenario 1 measures. */
export const BATCH = 1000

/** Zero-padded ids (`w-0000042`) sort like numbers, so id-prefix globs select contiguous ranges. */
export function paddedId(prefix: string, n: number, width = 7): string {
  return `${prefix}${String(n).padStart(width, '0')}`
}

/** Builds the assert ops of one batch ahead of time, so that timings measure the engine only. */
export function assertOps(
  kind: string,
  from: number,
  count: number,
  id: (n: number) => string,
  data: (n: number) => unknown,
): Op[] {
  const ops: Op[] = []
  for (let n = from; n < from + count; n++)
    ops.push({ op: 'assert', kind, id: id(n), data: data(n) })
  return ops
}

/**
 * Asserts `count` records of `kind` owned by `proc`, in `transact` batches of {@link BATCH}.
 * Several kinds may share one `data` object (records are frozen, the data is never copied), so a
 * second kind over the same data costs only its records and indexes.
 */
export async function load(
  proc: Process,
  kinds: readonly string[],
  count: number,
  id: (n: number) => string,
  data: (n: number) => unknown,
): Promise<void> {
  for (let from = 0; from < count; from += BATCH) {
    const size = Math.min(BATCH, count - from)
    const values: unknown[] = []
    for (let n = from; n < from + size; n++) values.push(data(n))
    for (const kind of kinds) {
      await proc.transact({ then: assertOps(kind, from, size, id, (n) => values[n - from]) })
    }
  }
}
