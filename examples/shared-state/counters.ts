import { z } from 'zod'
import { Conflict, escapeGlob } from '../../src/index.js'
import type { Condition, DataspaceApi, KvApi, Op, Process } from '../../src/index.js'

/** Counters that must move in the same commit as other records live as records of this kind. */
export const METRIC_KIND = 'metric'

const metricSchema = z.object({ value: z.number().int() })

/** The data of a `metric` record. */
export type MetricData = z.output<typeof metricSchema>

/** Declares the `metric` kind (a schema, no indexes: metrics are read by id). */
export async function defineMetricKind(ds: Pick<DataspaceApi, 'defineKind'>): Promise<void> {
  await ds.defineKind<MetricData>(METRIC_KIND, { schema: metricSchema })
}

/** Completed tasks, all workers together. */
export const DONE_KEY = 'tasks.done'

/** Tasks the janitor put back in the queue because their worker died holding them. */
export const REQUEUED_KEY = 'tasks.requeued'

/** Tasks completed by the agent called `name` (all its incarnations: a restart keeps the name). */
export function workerDoneKey(name: string): string {
  return `worker.${name}.done`
}

/** Options of {@link updateWithRetry}. */
export interface RetryOptions {
  /** Give up (rethrow the `Conflict`) after this many attempts (default 1000). */
  readonly maxAttempts?: number
  readonly signal?: AbortSignal
  /** Called after each lost race, before the next attempt (to count contention). */
  readonly onConflict?: (attempt: number, error: Conflict) => void
}

/**
 * The compare-and-swap loop that replaces a lock: `attempt` reads what it needs, then writes
 * conditioned on what it read (`ifRevision`, or `if: [{ kind, id, revision }]`). A `Conflict`
 * means another writer committed in between, so read again and retry; any other error is
 * rethrown. Nothing is held while the attempt awaits, so a writer that dies mid-attempt blocks
 * no one, and every `Conflict` means somebody else's commit went through: the system as a whole
 * always progresses (lock-free), which is why no backoff is needed in one event loop.
 *
 * @example
 * await updateWithRetry(async () => {
 *   const entry = await kv.get('hits')
 *   await kv.put('hits', Number(entry?.value ?? 0) + 1, { ifRevision: entry?.revision ?? 0 })
 * })
 */
export async function updateWithRetry<T>(
  attempt: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 1000
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted()
    try {
      return await attempt(n)
    } catch (error) {
      if (!(error instanceof Conflict) || n >= maxAttempts) throw error
      options.onConflict?.(n, error)
    }
  }
}

/** Adds `by` to a numeric KV key (absent = 0) with {@link updateWithRetry}; returns the new value. */
export function kvIncrement(
  kv: KvApi,
  key: string,
  by = 1,
  options: RetryOptions = {},
): Promise<number> {
  return updateWithRetry(async () => {
    const entry = await kv.get(key)
    const next = (typeof entry?.value === 'number' ? entry.value : 0) + by
    // ifRevision 0 = "must not exist": two first writers cannot both create the key.
    await kv.put(key, next, { ifRevision: entry?.revision ?? 0 })
    return next
  }, options)
}

/** A counter bump to put into a transaction: the guard and the write, from one read. */
export interface Increment {
  readonly condition: Condition
  readonly op: Op
  /** The value the counter will have if the transaction commits. */
  readonly next: number
}

/**
 * Counters as `metric` records, so a bump can share a commit with other writes ("task done"
 * and "done += 1" together — what the ADR's separate `Arc<RwLock<Metrics>>` cannot give).
 *
 * A plain process cannot create ownerless records, so one long-lived `metrics` process owns
 * them; everyone else writes them with a `claim` by id (a claim patches a record without owning
 * it), guarded by the revision they read. The counters live as long as that process.
 */
export class Counters {
  readonly #ds: DataspaceApi
  readonly #owner: Process

  /** Starts the owning process (`name`, default `metrics`). */
  constructor(ds: DataspaceApi, name = 'metrics') {
    this.#ds = ds
    this.#owner = ds.process(name)
  }

  /** The pid that owns the counters. */
  get owner(): string {
    return this.#owner.id
  }

  /** Creates the counters that do not exist yet, at 0 (a claim needs a record to patch). */
  async ensure(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      try {
        await this.#owner.assert<MetricData>(METRIC_KIND, key, { value: 0 }, { ifRevision: 0 })
      } catch (error) {
        if (!(error instanceof Conflict)) throw error // Conflict: it exists already — fine
      }
    }
  }

  /** The counter's value (0 if absent). */
  async read(key: string): Promise<number> {
    return (await this.#ds.get<MetricData>(METRIC_KIND, key))?.data.value ?? 0
  }

  /**
   * Reads `key` now and returns the condition + op that add `by` to it in the caller's
   * transaction; the commit fails with `Conflict` if anyone bumped it in between.
   */
  async increment(key: string, by = 1): Promise<Increment> {
    const record = await this.#ds.get<MetricData>(METRIC_KIND, key)
    // Not a Conflict: retrying cannot create it, and the claim below cannot either.
    if (record === undefined) throw new Error(`counter ${key} does not exist: ensure() it first`)
    const next = record.data.value + by
    return {
      condition: { kind: METRIC_KIND, id: key, revision: record.revision },
      op: { op: 'claim', kind: METRIC_KIND, id: key, patch: { value: next } },
      next,
    }
  }

  /** `key` += `by` in a commit of its own, as `proc`, retrying on `Conflict`. */
  add(proc: Process, key: string, by = 1, options: RetryOptions = {}): Promise<number> {
    return updateWithRetry(async () => {
      const bump = await this.increment(key, by)
      await proc.transact({ if: [bump.condition], then: [bump.op] })
      return bump.next
    }, options)
  }

  /** Every counter whose key starts with `prefix`, read at one revision. */
  async snapshot(prefix = ''): Promise<Map<string, number>> {
    // A literal-prefix id glob is served from the id index, not a scan.
    const { items } = await this.#ds.list<MetricData>(METRIC_KIND, { id: `${escapeGlob(prefix)}*` })
    return new Map(items.map((record) => [record.id, record.data.value] as const))
  }

  /** Exits the owning process: the counters are retracted with it. */
  close(): Promise<void> {
    return this.#owner.exit()
  }
}
