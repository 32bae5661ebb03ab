import type { BackedReads, ReadResult } from './backed-reads.js'
import type { CommitPath } from './commit.js'
import type { KindCatalog } from './kind-catalog.js'
import type { MemoryAccount } from './memory-account.js'
import type { NonResidentReads } from './non-resident-reads.js'
import type { PendingCommits } from './pending-commits.js'
import type { LoadedState } from './ports/backend.js'
import type { ProcessTable } from './process-table.js'
import { recordBytes } from './record-bytes.js'
import type { BackendRuntime, RefusedCommit } from './storage/runtime.js'
import { Transaction } from './transaction.js'
import type { TransactionContext } from './transaction.js'
import type { TtlExpiry } from './ttl-expiry.js'
import { freezeJson } from '../model/validate.js'
import { WATCH_KIND } from './watch-registry.js'

/** The parts of the engine start-up and recovery rebuild or repair. */
export interface RecoveryParts {
  readonly context: TransactionContext
  readonly closed: () => boolean
  readonly catalog: KindCatalog
  readonly processes: ProcessTable
  readonly commits: CommitPath
  readonly reads: NonResidentReads
  readonly memory: MemoryAccount
  readonly expiry: TtlExpiry
  readonly pending: PendingCommits | undefined
  readonly backed: BackedReads | undefined
  /** The backend runtime: it knows which processes the store keeps across a restart. */
  readonly runtime: BackendRuntime | undefined
  /** A cluster node's processes that exited here, their exit not yet durable (ProcessOps). */
  readonly unwrittenExits: ReadonlySet<string>
}

/**
 * Start-up and recovery: memory made equal to what a durable store holds, when the engine opens
 * it (`install`) and when the store refuses a commit memory already applied (`undoRefused`).
 */
export class Recovery {
  readonly #parts: RecoveryParts

  constructor(parts: RecoveryParts) {
    this.#parts = parts
  }

  /**
   * Loads a backend's state: kinds first (their indexes), then records, at the stored revision.
   * The processes the store keeps across a restart come back (the server adopts them as its
   * sessions, with a fresh lease); every other owner died with the previous server, so what it
   * owned is retracted now, in one commit, as its exit would have done.
   */
  install(state: LoadedState): void {
    const { catalog, processes, memory, expiry, backed } = this.#parts
    for (const kind of state.kinds) catalog.restore(kind)
    backed?.seedOwners(state.owned ?? [])
    for (const record of state.records) {
      const frozen = freezeJson(record, 'record', Infinity)
      catalog.storeFor(record.kind).put(frozen, undefined)
      memory.records += recordBytes(frozen)
      // A follower expires nothing (the writer's removals reach it as commits).
      if (frozen.expiresAt !== undefined && this.#parts.commits.writesRefused === undefined) {
        expiry.schedule(frozen.expiresAt, frozen.kind, frozen.id)
      }
    }
    // New pids must not repeat one of the previous run's: kept processes still use theirs,
    // and other stores may still mention the others.
    const kept = this.#parts.runtime?.restoredProcesses() ?? []
    for (const pid of storedPids(state)) processes.reserve(pid)
    for (const { pid } of kept) processes.reserve(pid)
    for (const { pid, name } of kept) processes.register(pid, name)
    // A follower writes nothing: reaping is the writer's (docs/cluster.md, "Followers"). A
    // cluster node's owners are other nodes' processes, alive: it reaps nobody at start-up.
    if (this.#parts.commits.writesRefused !== undefined) return
    if (this.#parts.commits.clustered) {
      expiry.armNext()
      return
    }
    const tx = new Transaction(this.#parts.context, null)
    // Watches end with their server: a `$watch` record in the store is a previous run's.
    for (const record of catalog.get(WATCH_KIND)?.records.values() ?? [])
      tx.remove(record, 'retract')
    for (const store of catalog.stores()) {
      for (const [owner, owned] of store.byOwner) {
        if (processes.has(owner)) continue
        for (const record of owned.values()) tx.remove(record, 'owner-exit')
      }
    }
    this.#parts.commits.applyStaged(tx)
    expiry.armNext()
    if (backed !== undefined) {
      const dead = [...backed.owners()].filter(([owner]) => !processes.has(owner))
      if (dead.length > 0) backed.ready = this.#reapNonResident(backed, dead)
    }
  }

  /**
   * The non-resident part of start-up reaping: what dead owners held in non-resident kinds is
   * read from the backend and retracted in one commit (after the resident part's). Every other
   * read of a non-resident kind waits for it; `openDataspace` resolves after it.
   */
  async #reapNonResident(
    backed: BackedReads,
    dead: readonly (readonly [owner: string, kinds: string[]])[],
  ): Promise<void> {
    const { reads, commits } = this.#parts
    const specs = dead.flatMap(([owner, kinds]) =>
      kinds.map((kind) => reads.readSpec(kind, { owner }, Infinity)),
    )
    const revision = await reads.retryRead(() =>
      backed.read(specs, (results) => this.#removeRead(results), { startup: true }),
    )
    await commits.durable(revision)
  }

  /** Applies, as one commit, the removal of every record `results` hold (reason `owner-exit`). */
  #removeRead(results: readonly ReadResult[]): number {
    const tx = new Transaction(this.#parts.context, null)
    for (const result of results) {
      for (const record of result.records) tx.remove(record, 'owner-exit')
    }
    return this.#parts.commits.applyStaged(tx)
  }

  /**
   * The backend refused the commit at `refused.revision` for its content (its writers get the
   * error; an empty commit is stored in its place). Memory must equal the store again: every key
   * it changed that no later commit changed goes back, in one new commit that watchers see as
   * ordinary changes and that is stored like any other, to the version the store holds. A
   * restored version whose owner has exited since is removed in the commit after: it must not
   * outlive its owner.
   */
  undoRefused(refused: RefusedCommit): void {
    const { pending, commits, processes } = this.#parts
    const undos = pending?.refuse(refused.revision) ?? []
    if (undos.length === 0) return
    // Run now (or after the dispatch in progress): the runtime refuses while this node writes.
    commits.system((tx) => {
      for (const { kind, id, current, target } of undos) tx.restore(kind, id, current, target)
    })
    // On a cluster node, a pid not alive here may be alive on another node (a session taken
    // over): only one that exited here is dead for sure.
    const dead = (pid: string): boolean =>
      !processes.isAlive(pid) && (!commits.clustered || this.#parts.unwrittenExits.has(pid))
    commits.system((orphans) => {
      for (const { target } of undos) {
        if (target?.owner == null || !dead(target.owner)) continue
        orphans.remove(target, 'owner-exit')
      }
    })
  }

  /**
   * A cluster node whose unwritten commits were dropped (another node wrote first) starts over
   * from the store's `state`: memory becomes the store (watches get `reset`), and whatever the
   * store still holds for this node's processes that exited meanwhile (`exited`: their exit's
   * commit was among the dropped ones) is retracted, as that exit would have done. Only those:
   * another pid of this node that is not alive here may be a session another node took over.
   */
  rewind(state: LoadedState, exited: Set<string>): void {
    const { pending, commits, processes, catalog } = this.#parts
    pending?.clear()
    commits.resync(state, true)
    const owners = [...exited].filter((pid) => !processes.isAlive(pid))
    exited.clear()
    if (owners.length === 0) return
    commits.system((tx) => {
      for (const store of catalog.stores()) {
        for (const owner of owners) {
          for (const record of store.byOwner.get(owner)?.values() ?? []) {
            tx.remove(record, 'owner-exit')
          }
        }
      }
    })
  }
}

/** Every owner a loaded state mentions. */
function* storedPids(state: LoadedState): Iterable<string> {
  for (const record of state.records) if (record.owner !== null) yield record.owner
  for (const owned of state.owned ?? []) yield owned.owner
}
