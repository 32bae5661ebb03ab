/**
 * THE commit path: every write of the dataspace, whoever makes it, goes through these steps.
 *
 *  1. Read.    `commit(actor, build, reads)`: the records of non-resident kinds the write needs
 *              are read from the backend first (non-resident-reads.ts `withReads`); resident
 *              kinds need no read and the next steps run at once.
 *  2. Stage.   In one synchronous turn: the actor is checked alive, and `build` stages its
 *              operations on a `Transaction` (transaction.ts), checked against the current state
 *              plus what earlier operations of the same commit did. Nothing is applied yet; a
 *              throw aborts the whole commit.
 *  3. Admit.   `applyStaged` → `#admit`: a commit that would grow the resident records past the
 *              memory budget is refused before anything changes (memory-account.ts).
 *  4. Apply.   `applyStaged`: the next revision; the kind stores and their indexes
 *              (kind-store.ts), or the pending writes of non-resident kinds (backed-reads.ts);
 *              the revision's `ChangeSet` in the history (history.ts) and in the undo log
 *              (pending-commits.ts); the backend runtime's write queue (storage/runtime.ts);
 *              new TTL deadlines (ttl-expiry.ts).
 *  5. Notify.  One observer round: `WatchRegistry.dispatch` (watch-registry.ts, watch-hub.ts)
 *              hands every watch and observation the commit's events, once.
 *  6. Durable. `durable(revision)`: the writer waits until the backend runtime has written the
 *              revision's batch (at once in memory). Readers are held back by the durable gate
 *              (streams/durable-gate.ts) until then, so nobody sees what a crash could undo.
 *
 * System writes (an exit, expiry, start-up reaping, the undo of a refused commit, `$watch`
 * records) stage their own transaction and enter at step 3 through `applyStaged`.
 *
 * On a cluster node (docs/cluster.md, "The write turn") steps 2–5 run only while the node holds
 * the store's write turn (write-turn.ts), after it applied every commit other nodes stored:
 * `commit` waits for the turn (`inTurn`), and system writes are builds (`system`) that run in
 * it, against the state then. Other nodes' commits enter at step 4 (`applyReplicated`).
 * @module
 */
import type { BackedReads, ReadSpec } from './backed-reads.js'
import type { Change, ChangeSet, History } from './history.js'
import type { KindCatalog } from './kind-catalog.js'
import type { KindStore } from './kind-store.js'
import type { MemoryAccount } from './memory-account.js'
import type { NonResidentReads } from './non-resident-reads.js'
import type { PendingCommits } from './pending-commits.js'
import type { LocalProcess } from './process.js'
import { recordBytes } from './record-bytes.js'
import type { BackendRuntime } from './storage/runtime.js'
import { Transaction } from './transaction.js'
import type { TransactionContext } from './transaction.js'
import type { TtlExpiry } from './ttl-expiry.js'
import type { WatchRegistry } from './watch-registry.js'
import type { WriteTurn } from './write-turn.js'
import type { DataspaceRecord } from '../model/types.js'
import { Unavailable } from '../errors/index.js'
import type { LoadedState, StoredCommit } from './ports/backend.js'
import { freezeJson } from '../model/validate.js'

/** The parts of the engine a commit touches. */
export interface CommitParts {
  /** The engine, as the context a system transaction stages against. */
  readonly context: TransactionContext
  readonly catalog: KindCatalog
  readonly reads: NonResidentReads
  readonly memory: MemoryAccount
  readonly history: History
  readonly watches: WatchRegistry
  readonly expiry: TtlExpiry
  /** Refuses when closed, then commits due expiries (every public operation starts so). */
  beginRead(): void
  readonly closed: () => boolean
  /** How many processes are live (the memory budget counts them). */
  readonly processCount: () => number
  /** Durable backends only: the undo log, the runtime, and pending non-resident writes. */
  readonly pending: PendingCommits | undefined
  readonly runtime: BackendRuntime | undefined
  readonly backed: BackedReads | undefined
}

/** Decides whether a writer's wait for durability is taken over (the server's durable answers). */
export type DurabilityDeferral = (revision: number, writer: boolean) => boolean

export class CommitPath {
  readonly #parts: CommitParts
  #revision: number
  #dispatching = false
  #deferDurable: DurabilityDeferral | undefined
  #readOnly: string | undefined
  /** A cluster node's write turn: every commit waits for it (docs/cluster.md). */
  #turn: WriteTurn | undefined
  /** System writes deferred past a dispatch (see `system`). */
  #deferred: (() => void)[] = []

  constructor(parts: CommitParts, revision: number) {
    this.#parts = parts
    this.#revision = revision
  }

  /** The revision of the latest commit. */
  get revision(): number {
    return this.#revision
  }

  /** True during step 5: watchers are being told, and no commit may start. */
  get dispatching(): boolean {
    return this.#dispatching
  }

  /**
   * Steps 1–6 as `actor` (a live process, or `null` for the system, which may write reserved
   * kinds and set owners): resolves with the revision once it is durable (at once in memory).
   */
  async commit<R>(
    actor: LocalProcess | null,
    build: (tx: Transaction) => R,
    reads: readonly ReadSpec[] = [],
  ): Promise<{ revision: number; result: R }> {
    this.#parts.beginRead()
    // On a follower every write is refused, also one that would change nothing (a claim with
    // nothing to claim, a failed condition): "no work" or "conflict" would hide the wrong node.
    if (this.#readOnly !== undefined) throw new Unavailable(this.#readOnly)
    // A dead actor need not wait for a read; with none, step 2 follows in this same turn.
    if (reads.length > 0 || this.#turn !== undefined) actor?.checkAlive()
    const applied = await this.inTurn(() =>
      this.#parts.reads.withReads(reads, (context) => {
        actor?.checkAlive()
        const tx = new Transaction(context, actor === null ? null : actor.id)
        const result = build(tx)
        const before = this.#revision
        const revision = this.applyStaged(tx)
        return { revision, result, wrote: revision !== before }
      }),
    )
    // Only a commit this call made can be refused for its content; an empty one waits.
    const durable = this.durable(applied.revision, applied.wrote)
    if (durable !== undefined) await durable
    return { revision: applied.revision, result: applied.result }
  }

  /**
   * Steps 3–5 for a staged transaction: returns the commit's revision (the current revision
   * when there was nothing to change). Does not wait for durability.
   */
  applyStaged(tx: Transaction): number {
    if (this.#dispatching)
      throw new Error('internal: a commit was started while watchers were being notified')
    if (this.#turn !== undefined && !this.#turn.held) {
      // Its turn ended under it: the store refused the node's batch (another node wrote
      // first), and what it would stage on is being dropped.
      throw new Unavailable(
        'this cluster node lost its write turn while the write was staged; the write was not applied',
      )
    }
    const changes = tx.changes.filter(
      (change) => change.before !== undefined || change.after !== undefined,
    )
    // A reaper's commit is written even when its sessions owned nothing: it deletes their rows.
    if (changes.length === 0 && tx.ends === undefined) return this.#revision
    if (this.#readOnly !== undefined) throw new Unavailable(this.#readOnly)
    const growth = this.#admit(changes)
    const revision = this.#revision + 1
    const commit: ChangeSet = { revision, changes }
    this.#apply(commit, growth, true)
    this.#parts.runtime?.commit(
      {
        revision,
        changes: changes.map((c) =>
          c.after === undefined && c.reason !== undefined
            ? { kind: c.kind, id: c.id, after: undefined, reason: c.reason }
            : { kind: c.kind, id: c.id, after: c.after },
        ),
      },
      tx.actor,
      tx.ends,
    )
    this.#notify(commit)
    return revision
  }

  /**
   * Steps 4–5 for a commit another server wrote and the store holds already (a follower's,
   * docs/cluster.md): it must be the next revision. Its `before` versions are this replica's;
   * nothing is admitted or refused (it is committed), nothing is queued for writing, and no TTL
   * is armed (the writer expires records; its removals arrive here like any commit).
   */
  applyReplicated(commit: StoredCommit): void {
    if (commit.revision !== this.#revision + 1) {
      throw new Error(
        `internal: replicated commit ${commit.revision} does not follow revision ${this.#revision}`,
      )
    }
    const { catalog } = this.#parts
    const changes: Change[] = []
    for (const stored of commit.changes) {
      const store = catalog.storeFor(stored.kind)
      // A non-resident kind is read from the store, which has the commit already; its events
      // would need the previous version, which the feed does not keep (a follower refuses to
      // watch such a kind).
      if (!store.resident) continue
      const before = store.records.get(stored.id)
      if (before === undefined && stored.after === undefined) continue
      changes.push({
        kind: stored.kind,
        id: stored.id,
        before,
        // Frozen like every record the engine holds: watchers share it with the store.
        after:
          stored.after === undefined ? undefined : freezeJson(stored.after, 'record', Infinity),
        reason: stored.after === undefined ? (stored.reason ?? 'retract') : undefined,
      })
    }
    const changeSet: ChangeSet = { revision: commit.revision, changes }
    // A cluster node expires what any node wrote (whichever node's clock passes it first).
    this.#apply(changeSet, this.#growth(changes), false, this.#turn !== undefined)
    // Durable already: what readers and watchers are held for is released at once.
    this.#parts.runtime?.advance(commit.revision)
    this.#notify(changeSet)
  }

  /**
   * Starts a replica over from `state`, the store's snapshot (a follower below the feed's
   * floor, docs/cluster.md): the stores become the snapshot, the revision jumps to its revision,
   * and the history restarts there. Every watch starts over with `reset` + a snapshot, as a
   * watch whose history is gone does; observers (synchronous, they cannot start over) are told
   * the net difference as one commit at that revision.
   */
  resync(state: LoadedState, rewind = false): void {
    if (state.revision < this.#revision && !rewind) {
      throw new Error(
        `internal: a snapshot at ${state.revision} is older than revision ${this.#revision}`,
      )
    }
    const { catalog, history, watches } = this.#parts
    for (const kind of state.kinds) catalog.restore(kind)
    const loaded = new Map<string, Map<string, DataspaceRecord>>()
    for (const record of state.records) {
      let byId = loaded.get(record.kind)
      if (byId === undefined) loaded.set(record.kind, (byId = new Map<string, DataspaceRecord>()))
      byId.set(record.id, freezeJson(record, 'record', Infinity))
    }
    const changes: Change[] = []
    for (const store of catalog.stores()) {
      if (!store.resident) continue
      const next = loaded.get(store.kind)
      for (const record of store.records.values()) {
        if (next?.has(record.id) !== true) {
          changes.push({
            kind: store.kind,
            id: record.id,
            before: record,
            after: undefined,
            reason: 'retract',
          })
        }
      }
    }
    for (const [kind, byId] of loaded) {
      const store = catalog.storeFor(kind)
      if (!store.resident) continue
      for (const [id, record] of byId) {
        const before = store.records.get(id)
        if (before?.revision === record.revision) continue
        changes.push({ kind, id, before, after: record, reason: undefined })
      }
    }
    const commit: ChangeSet = { revision: state.revision, changes }
    this.#apply(commit, this.#growth(changes), false, this.#turn !== undefined)
    history.restart(state.revision)
    this.#parts.runtime?.advance(state.revision)
    // Watches first: each re-snapshots at this revision and so skips the commit below.
    watches.resyncAll()
    this.#notify(commit)
  }

  /**
   * Step 4: the kind stores, the history and (`local`: this node made it) the undo log, at
   * `commit.revision`; `arm`: new TTL deadlines are scheduled.
   */
  #apply(commit: ChangeSet, growth: number, local: boolean, arm = local): void {
    const parts = this.#parts
    const revision = commit.revision
    this.#revision = revision
    let nextExpiry = Infinity
    let removals: Map<KindStore, DataspaceRecord[]> | undefined
    for (const change of commit.changes) {
      const store = parts.catalog.storeFor(change.kind)
      if (!store.resident) {
        ;(parts.backed as BackedReads).applyChange(change, revision)
        continue
      }
      if (change.after === undefined) {
        if (change.before === undefined) continue
        removals ??= new Map()
        const list = removals.get(store)
        if (list === undefined) removals.set(store, [change.before])
        else list.push(change.before)
      } else {
        store.put(change.after, change.before)
        const at = change.after.expiresAt
        if (arm && at !== undefined && at !== change.before?.expiresAt) {
          parts.expiry.schedule(at, change.kind, change.id)
          if (at < nextExpiry) nextExpiry = at
        }
      }
    }
    // Removals go last and in bulk: a change's id is unique within a commit, so order is free.
    if (removals !== undefined) for (const [store, list] of removals) store.deleteMany(list)
    parts.memory.records += growth
    parts.history.append(commit)
    if (local) parts.pending?.push(commit)
    if (nextExpiry !== Infinity) parts.expiry.wakeBy(nextExpiry)
  }

  /** Step 5: one observer round for `commit`. */
  #notify(commit: ChangeSet): void {
    this.#dispatching = true
    try {
      this.#parts.watches.dispatch(commit)
    } finally {
      this.#dispatching = false
    }
  }

  /**
   * Makes this engine a replica that never writes (a follower): every commit that would change
   * something is refused with `Unavailable` and `reason`.
   */
  refuseWrites(reason: string): void {
    this.#readOnly = reason
  }

  /** True on a node of a cluster: it writes in turns (see `useTurn`). */
  get clustered(): boolean {
    return this.#turn !== undefined
  }

  /** Why this engine refuses writes (a follower), or `undefined`. */
  get writesRefused(): string | undefined {
    return this.#readOnly
  }

  /**
   * Makes this engine a node of a cluster (docs/cluster.md, "The write turn"): from now on
   * every commit waits for `turn`, and system writes run in it.
   */
  useTurn(turn: WriteTurn): void {
    this.#turn = turn
  }

  /**
   * Runs `use` (which stages and applies commits) when this node may write: at once, or on a
   * cluster node once it holds the write turn, which is not given back before `use` settles.
   * `system`: the engine's own work (an exit), which waits for a turn as long as it takes.
   */
  inTurn<R>(use: () => R | Promise<R>, system = false): R | Promise<R> {
    // One server per store: at once, with no promise in between (the hot path of every write).
    if (this.#turn === undefined) return use()
    return this.#inTurn(this.#turn, use, system)
  }

  async #inTurn<R>(turn: WriteTurn, use: () => R | Promise<R>, system: boolean): Promise<R> {
    const leave = await turn.enter(system)
    try {
      return await use()
    } finally {
      leave()
    }
  }

  /**
   * A system commit (expiry, `$watch` records, the undo of a refused commit): `build` stages it
   * on a new transaction as the system, and it is applied — now, or on a cluster node at its
   * next write turn, against the state then (so `build` must read what it removes from `tx`,
   * not capture it). Deferred to a microtask when called during step 5 (a watch closed by its
   * consumer mid-dispatch retracts its `$watch` record). Errors are thrown when run now, and
   * logged by the turn when deferred.
   */
  system(build: (tx: Transaction) => void): void {
    const run = (): void => {
      if (this.#parts.closed()) return
      const tx = new Transaction(this.#parts.context, null)
      build(tx)
      this.applyStaged(tx)
    }
    const go = (): void => (this.#turn === undefined ? run() : this.#turn.whenHeld(run))
    // In order: a `$watch` withdrawal must not overtake its own publication still deferred.
    if (!this.#dispatching && this.#deferred.length === 0) {
      go()
      return
    }
    this.#deferred.push(go)
    if (this.#deferred.length === 1) queueMicrotask(() => this.#runDeferred())
  }

  /** Runs the system writes deferred past a dispatch, in order. */
  #runDeferred(): void {
    while (this.#deferred.length > 0) {
      if (this.#dispatching) {
        queueMicrotask(() => this.#runDeferred())
        return
      }
      const go = this.#deferred.shift() as () => void
      try {
        go()
      } catch {
        // Nobody awaits a deferred system write to tell: a `$watch` record the memory budget
        // refuses is not written (the watch works without it); the others only shrink.
      }
    }
  }

  /**
   * Step 6: settles when `revision` is durable; `undefined` when it already is or nothing
   * persists. `writer`: the caller made the commit at `revision`, and gets the backend's error if
   * that commit is refused (docs/backends.md, "Refused writes").
   */
  durable(revision: number, writer = false): Promise<void> | undefined {
    if (this.#deferDurable?.(revision, writer) === true) return undefined
    return this.#parts.runtime?.waitFor(revision, writer)
  }

  /** Lets a layer above take over writers' waits for durability (see `Engine.deferDurability`). */
  deferDurability(defer: DurabilityDeferral | undefined): void {
    this.#deferDurable = defer
  }

  /**
   * Step 3: refuses a commit that would grow the resident records past the memory budget, before
   * anything is applied (nothing half-applied). Commits that shrink them — retracts, deletes,
   * expiries, exits — always pass. Watch queues are shed first: watchers that do not read must
   * not keep writers out. Returns the growth, which step 4 adds to the account.
   */
  #admit(changes: readonly Change[]): number {
    const { memory, watches } = this.#parts
    const growth = this.#growth(changes)
    memory.watches = watches.hub.size
    memory.processes = this.#parts.processCount()
    if (memory.fits(growth)) return growth
    if (memory.watchQueues.bytes > 0 && !this.#dispatching) {
      watches.shed(memory.overBy(growth))
      if (memory.fits(growth)) return growth
    }
    return memory.refuse(growth)
  }

  /** How many estimated bytes `changes` add to the resident records (negative: free). */
  #growth(changes: readonly Change[]): number {
    let growth = 0
    for (const change of changes) {
      if (!this.#parts.catalog.isResident(change.kind)) continue
      if (change.after !== undefined) growth += recordBytes(change.after)
      if (change.before !== undefined) growth -= recordBytes(change.before)
    }
    return growth
  }
}
