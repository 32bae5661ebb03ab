import assert from 'node:assert/strict'
import { InvalidSelector } from '../../src/errors/index.js'

/** Asserts that `fn` throws an {@link InvalidSelector} pointing at `position`. */
export function assertInvalidAt(fn: () => unknown, position: number | undefined, label = ''): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(
        err instanceof InvalidSelector,
        `${label}: expected InvalidSelector, got ${String(err)}`,
      )
      assert.equal(err.position, position, `${label}: wrong position in:\n${err.message}`)
      return true
    },
    label,
  )
}

/**
 * fast-check parameters: `FC_SEED` replays a failing run (fast-check prints the seed and path in
 * its failure message).
 */
export function fcParams(numRuns = 300): { numRuns: number; seed?: number } {
  const seed = process.env.FC_SEED
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed) }
}
