import { DataspaceError, Unavailable } from '../errors/index.js'

/**
 * Holds what a reader would see until the revision it shows is durable (docs/design.md: "nothing is
 * seen before it is durable"). The engine applies a commit in memory at once and the backend
 * makes it durable at the end of the turn (group commit); a watcher that acted on an event, or a
 * process that read a record, before that could otherwise see a change that a crash then undoes.
 *
 * Results are computed when asked, at the current revision, and only their RELEASE waits: a read
 * never blocks the commit path, and costs nothing while everything applied is already durable
 * (always, on the memory backend, which has no gate).
 */
export interface DurableGate {
  /** `undefined` when `revision` is durable already; otherwise settles once it is. */
  release(revision: number): Promise<void> | undefined
}

/** What the gate needs from the backend runtime. */
export interface DurabilitySource {
  readonly durableRevision: number
  waitFor(revision: number): Promise<void>
}

/**
 * Why a wait for durability fails for good: the commits it waited for were dropped, never
 * stored (a cluster node whose batch another node's write overtook starts over from the store,
 * docs/cluster.md). A writer is told its write was not applied; a reader, that what it read is
 * gone. `Unavailable` on the wire: the caller may try again.
 */
export class NeverDurable extends Unavailable {}

/** A gate over a backend runtime. */
export function durableGate(source: DurabilitySource): DurableGate {
  return {
    release: (revision) =>
      revision <= source.durableRevision ? undefined : untilDurable(source, revision),
  }
}

/**
 * Waits however long storage takes: a slow disk or a database outage delays what readers see,
 * it never releases something not stored. `Unavailable` (a writer's time-out) is the writer's
 * answer, so the reader waits on; `Closed` ends the wait (the dataspace's streams are ending and
 * its runtime flushed what it could).
 */
async function untilDurable(source: DurabilitySource, revision: number): Promise<void> {
  for (;;) {
    try {
      await source.waitFor(revision)
      return
    } catch (error) {
      // What was read will never be stored: the reader fails rather than see it.
      if (error instanceof NeverDurable) throw error
      if (!(error instanceof DataspaceError) || error.code !== 'Unavailable') return
    }
  }
}

/** The highest numeric `revision` among `items` (events carry one; messages and resets do not). */
export function revisionOf(items: readonly unknown[]): number | undefined {
  let highest: number | undefined
  for (const item of items) {
    const revision = (item as { revision?: unknown } | null)?.revision
    if (typeof revision === 'number' && (highest === undefined || revision > highest)) {
      highest = revision
    }
  }
  return highest
}

/** `value` once `revision` is durable: at once when there is no gate or nothing to wait for. */
export function whenDurable<T>(
  gate: DurableGate | undefined,
  revision: number | undefined,
  value: T,
): T | Promise<T> {
  const wait = revision === undefined ? undefined : gate?.release(revision)
  return wait === undefined ? value : wait.then(() => value)
}
