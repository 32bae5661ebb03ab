// The Agent Substrate control-plane model (RFC "Flexible & Non-Ossifying Control Plane
// Persistence Layer"): workers and actors as dataspace kinds, with the fields the scheduler
// selects on declared and indexed — including the array field `cached_snapshots`, whose index
// holds each element, so `cached_snapshots=<uri>` finds the workers that have it hot.
import type { DataspaceApi } from '../../src/index.js'

export const WORKER = 'substrate.worker'
export const ACTOR = 'substrate.actor'

/** A worker, asserted by the worker's own session: it disappears when the worker dies. */
export interface Worker {
  readonly pool: string
  readonly node_name: string
  readonly size: string
  readonly gpu_type: string
  readonly status: 'ready'
  /** The actor running here, `''` when the worker is free. */
  readonly actor_id: string
  /** Snapshot URIs this worker has hot-cached. */
  readonly cached_snapshots: readonly string[]
}

/** An actor: ownerless (it outlives every process), written by the API server and the schedulers. */
export interface Actor {
  readonly pool: string
  readonly snapshot: string
  readonly status: 'pending' | 'scheduled'
  /** The worker it runs on, `''` until the assignment is recorded. */
  readonly worker_id: string
  /** Which scheduler placed it and whether the snapshot was hot there (informational). */
  readonly scheduler?: string
  readonly locality?: 'warm' | 'cold'
  /** Set by the controller when the actor's worker died and it went back to pending. */
  readonly requeued_from?: string
}

/**
 * Declares both kinds. Declared `fields` are a closed list: a typo in a selector is an error.
 * Both are non-resident unless told: over a database they live only there (the RFC's tables too
 * large for every server's memory); over memory the flag has no effect.
 */
export async function defineKinds(
  ds: DataspaceApi,
  { resident = false }: { resident?: boolean } = {},
): Promise<void> {
  await ds.defineKind(WORKER, {
    fields: ['pool', 'node_name', 'size', 'gpu_type', 'status', 'actor_id', 'cached_snapshots'],
    indexes: ['pool', 'node_name', 'status', 'actor_id', 'cached_snapshots'],
    resident,
  })
  await ds.defineKind(ACTOR, {
    fields: ['pool', 'snapshot', 'status', 'worker_id', 'scheduler', 'locality'],
    indexes: ['pool', 'status', 'worker_id'],
    resident,
  })
}

/**
 * The RFC's two-stage lookup as field selectors, in the RFC's own map form (`FieldSelector
 * map[string]string`): a free worker in the pool with the snapshot hot-cached
 * (`pool=P,actor_id=,cached_snapshots=S`), else any free worker in the pool (`pool=P,actor_id=`).
 * The map form needs no escaping, whatever characters a snapshot URI holds.
 */
export function workerSelectors(actor: Pick<Actor, 'pool' | 'snapshot'>): {
  readonly warm: Readonly<Record<string, string>>
  readonly cold: Readonly<Record<string, string>>
} {
  return {
    warm: { pool: actor.pool, actor_id: '', cached_snapshots: actor.snapshot },
    cold: { pool: actor.pool, actor_id: '' },
  }
}
