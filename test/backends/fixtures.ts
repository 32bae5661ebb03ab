import type { Backend, LoadedState, StoredCommit, StoredSession } from '../../src/backends/index.js'
import type { DataspaceRecord } from '../../src/model/types.js'

/** What a conformance factory returns: a fresh, empty store and a way to reopen it. */
export interface BackendHarness {
  /** A backend over a new, empty store, not yet opened. */
  readonly backend: Backend
  /** A new backend over the SAME store (after the previous one was closed), not yet opened. */
  readonly reopen: () => Promise<Backend>
  /** Deletes the store (drops the schema, removes the file). */
  readonly cleanup: () => Promise<void>
}

export type BackendFactory = () => Promise<BackendHarness>

/**
 * Runs `body` against a fresh store, then closes whatever backend is still open and cleans up,
 * whether or not `body` failed.
 */
export async function withStore(
  factory: BackendFactory,
  body: (store: Store) => Promise<void>,
): Promise<void> {
  const harness = await factory()
  const store = new Store(harness)
  try {
    await body(store)
  } finally {
    await store.closeCurrent()
    await harness.cleanup()
  }
}

/** The backend currently open on a store, and reopening it. */
export class Store {
  readonly #harness: BackendHarness
  #current: Backend | undefined

  constructor(harness: BackendHarness) {
    this.#harness = harness
  }

  get capabilities(): Backend['capabilities'] {
    return this.#harness.backend.capabilities
  }

  /** Opens the first backend. */
  async open(): Promise<{ backend: Backend; state: LoadedState }> {
    this.#current = this.#harness.backend
    return { backend: this.#harness.backend, state: await this.#harness.backend.open() }
  }

  /** Closes the open backend and opens a new one over the same store. */
  async reopen(): Promise<{ backend: Backend; state: LoadedState }> {
    await this.closeCurrent()
    const backend = await this.#harness.reopen()
    this.#current = backend
    return { backend, state: await backend.open() }
  }

  async closeCurrent(): Promise<void> {
    const current = this.#current
    this.#current = undefined
    await current?.close()
  }
}

/** A record as the engine would store it. */
export function record(
  kind: string,
  id: string,
  revision: number,
  extra: Partial<Omit<DataspaceRecord, 'kind' | 'id' | 'revision'>> = {},
): DataspaceRecord {
  return {
    kind,
    id,
    data: 'data' in extra ? extra.data : { n: revision },
    labels: extra.labels ?? {},
    owner: extra.owner === undefined ? null : extra.owner,
    revision,
    createdRevision: extra.createdRevision ?? revision,
    ...(extra.expiresAt === undefined ? {} : { expiresAt: extra.expiresAt }),
  }
}

/** A commit that puts each record (or removes `[kind, id]` pairs). */
export function commit(
  revision: number,
  puts: readonly DataspaceRecord[],
  removes: readonly (readonly [string, string])[] = [],
): StoredCommit {
  return {
    revision,
    changes: [
      ...puts.map((r) => ({ kind: r.kind, id: r.id, after: r })),
      ...removes.map(([kind, id]) => ({ kind, id, after: undefined })),
    ],
  }
}

export function session(id: string, extra: Partial<StoredSession> = {}): StoredSession {
  return {
    id,
    resumeTokenHash: 'ab'.repeat(32),
    pid: `<${id}.0>`,
    name: `worker ${id}`,
    ttl: 30_000,
    children: [],
    lastChild: 0,
    principal: null,
    ...extra,
  }
}

/** The state in a canonical order, so that two loads compare with deepStrictEqual. */
export function canonical(state: LoadedState): LoadedState {
  const key = (r: { kind: string; id: string }): string => `${r.kind}\u0000${r.id}`
  return {
    revision: state.revision,
    records: [...state.records].sort((a, b) => compare(key(a), key(b))),
    kinds: [...state.kinds].sort((a, b) => compare(a.kind, b.kind)),
    sessions: [...state.sessions].sort((a, b) => compare(a.id, b.id)),
  }
}

/** The state a model holds: records by kind/id, applied commit by commit. */
export class Model {
  revision = 0
  readonly records = new Map<string, DataspaceRecord>()

  apply(commits: readonly StoredCommit[]): void {
    for (const c of commits) {
      for (const change of c.changes) {
        const key = `${change.kind}\u0000${change.id}`
        if (change.after === undefined) this.records.delete(key)
        else this.records.set(key, change.after)
      }
      this.revision = c.revision
    }
  }
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed from its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let batches = 0

/**
 * A fresh `WriteBatch.id`: each test batch is a new batch, never a retry. `run` is the writer's
 * run (`WriteBatch.id`): cluster nodes writing beside each other each need their own.
 */
export function nextBatchId(run = `test-${process.pid}`): string {
  return `${run}-${++batches}`
}
