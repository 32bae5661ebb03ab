import type { BackendHealth, StoredRows } from './storage/runtime.js'
import type { LoadedState, SessionMatch, TakenSession } from './ports/backend.js'
import type { ReadResult, ReadSpec } from './backed-reads.js'
import { runProcess } from '../model/run-process.js'
import { Closed, InvalidArgument, Unavailable } from '../errors/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import { whenDurable } from '../streams/durable-gate.js'
import type { DurableGate } from '../streams/durable-gate.js'
import type { DurabilityDeferral } from './commit.js'
import type { DataspaceOptions, DataspaceStats } from './engine-options.js'
import { assemble, statsOf } from './engine-parts.js'
import type { EngineParts } from './engine-parts.js'
import type { History } from './history.js'
import type { KindStore } from './kind-store.js'
import { listPage } from './list-page.js'
import type { LocalProcess } from './process.js'
import { plan, select } from './query-planner.js'
import type { Transaction, TransactionContext } from './transaction.js'
import type {
  CloseReason,
  DataspaceRecord,
  ExplainResult,
  KindOptions,
  ListOptions,
  ListResult,
  ProcessFunction,
  Selector,
  SendTarget,
  SpawnOptions,
  Watch,
  WatchEvent,
  WatchOptions,
} from '../model/types.js'
import type { Kernel, TargetResolver } from './ports/kernel.js'
import { checkId, checkKind, checkLimit, checkPositive, describe } from '../model/validate.js'
import type { Observation, WatchContext } from './watch-registry.js'

/**
 * The in-process dataspace: the engine. It holds the records, their indexes, the watch hub and
 * the process table, and does no I/O itself. This class is a façade over the parts, one file
 * each: the commit path (commit.ts), the kind catalog (kind-catalog.ts), the process table
 * (process-table.ts) and process operations (process-ops.ts), non-resident reads
 * (non-resident-reads.ts), start-up and recovery (start-up.ts), TTL expiry (ttl-expiry.ts) and
 * the watches (watch-registry.ts).
 */
export class Engine implements Kernel, WatchContext {
  readonly node: string
  /**
   * Holds what readers see until it is durable (durable-gate.ts); `undefined` on the memory
   * backend, where a commit is as durable as it will ever be once applied.
   */
  readonly gate: DurableGate | undefined
  readonly #parts: EngineParts
  readonly #targets: TargetResolver[] = []
  #closed = false
  /** Set when `close` ends the watches: none may open after (it would never be ended). */
  #closing = false

  /** @param loaded the backend's state, when `openDataspace` loaded it already. */
  constructor(options: DataspaceOptions = {}, loaded?: LoadedState) {
    const parts = (this.#parts = assemble(this, options, loaded))
    this.node = parts.node
    this.gate = parts.gate
    if (parts.state !== undefined) parts.recovery.install(parts.state)
  }

  /**
   * Settles once start-up is complete: what owners that died with the previous server held in
   * non-resident kinds has been retracted (resident kinds are done in the constructor).
   */
  async ready(): Promise<void> {
    await this.#parts.backed?.ready
    // A follower is ready once it listens for the writer's doorbell and has read the feed once
    // (a failed read does not fail this: it is reported by `backendHealth` and retried).
    await this.#parts.follower?.start()
    this.#parts.leases?.start()
  }

  /**
   * Why this engine refuses every write, or `undefined`: set on a follower (a backend opened with
   * `follow: true`), which applies the writer's commits and serves reads and watches.
   */
  get writesRefused(): string | undefined {
    return this.#parts.commits.writesRefused
  }

  /** True when commits are written to a durable backend before they are acknowledged. */
  get durableBackend(): boolean {
    return this.#parts.runtime !== undefined
  }

  /**
   * What a layer above the engine stores in the durable backend beside the records (the
   * server's sessions and their answers: src/server/session-store.ts); `undefined` in memory.
   * Processes of stored sessions are kept, not exited, when a durable dataspace closes.
   */
  get storage(): StoredRows | undefined {
    // A follower stores nothing: its sessions live in memory and end with it. A cluster node's
    // live in the store, with leases (docs/cluster.md, "Sessions in the store").
    return this.writesRefused === undefined ? this.#parts.runtime : undefined
  }

  /**
   * A cluster node's (docs/cluster.md, "Resuming on another node"): takes over the stored
   * session `id` that another node held, when it is live and `match` matches, and serves its
   * processes here; resolves with it and its stored answers, or `undefined`. Elsewhere
   * (`undefined` too) there is nothing to take over: a session lives on one server.
   */
  takeOverSession(id: string, match: SessionMatch): Promise<TakenSession | undefined> {
    return this.#parts.leases?.takeOver(id, match) ?? Promise.resolve(undefined)
  }

  /**
   * A cluster node's stored session whose client went away from this node (its lease here ran
   * out): see `SessionLeases.release`. Elsewhere `undefined`: the caller exits its processes.
   */
  releaseSession(id: string): Promise<void> | undefined {
    return this.#parts.leases?.release(id)
  }

  /** Whether writes reach the durable backend (`undefined` in memory): `/readyz` reports it. */
  get backendHealth(): BackendHealth | undefined {
    const runtime = this.#parts.runtime
    if (runtime === undefined) return undefined
    if (!runtime.health.ok) return runtime.health
    // A cluster node that cannot take the write turn cannot write; one that cannot read the
    // feed falls behind (so does a follower).
    const turn = this.#parts.turn?.failing
    if (turn !== undefined) return { backend: runtime.backend.name, ok: false, ...turn }
    const following = this.#parts.follower?.health
    if (following === undefined || following.ok) return runtime.health
    return { backend: runtime.backend.name, ...following }
  }

  /**
   * Settles when `revision` is durable; `undefined` when it already is or nothing persists.
   * `writer`: the caller made the commit at `revision`, and gets the backend's error if that
   * commit is refused (docs/backends.md, "Refused writes").
   */
  durable(revision: number, writer = false): Promise<void> | undefined {
    return this.#parts.commits.durable(revision, writer)
  }

  /**
   * Lets the server answer write calls exactly once across restarts (src/server/ws/
   * durable-answers.ts): `defer(revision)` is asked each time a writer is about to wait for its
   * commit to be durable; when it returns true the writer resolves at once and the server, having
   * stored the answer with that commit, waits for durability itself.
   */
  deferDurability(defer: DurabilityDeferral | undefined): void {
    this.#parts.commits.deferDurability(defer)
  }

  get revision(): number {
    return this.#parts.commits.revision
  }

  /** The bound on one client value's JSON encoding, in bytes (`maxValueBytes`). */
  get maxValueBytes(): number {
    return this.#parts.options.maxValueBytes
  }

  get history(): History {
    return this.#parts.history
  }

  get closed(): boolean {
    return this.#closed
  }

  now(): number {
    return Date.now()
  }

  store(kind: string): KindStore | undefined {
    return this.#parts.catalog.get(kind)
  }

  /** The store of `kind`, created on first write. */
  storeFor(kind: string): KindStore {
    return this.#parts.catalog.storeFor(kind)
  }

  get storesOf(): Iterable<KindStore> {
    return this.#parts.catalog.stores()
  }

  get stats(): DataspaceStats {
    return statsOf(this.#parts)
  }

  // Applied synchronously (a caller that forgets to await still gets its kind); async so that bad input rejects.
  async defineKind<T = unknown>(kind: string, options: KindOptions<T> = {}): Promise<void> {
    this.checkOpen()
    // A declaration is stored like a write; a follower has the writer's, and accepts only a
    // declaration that matches it.
    if (this.writesRefused !== undefined) {
      if (this.#parts.catalog.declares(kind, options)) return
      throw new Unavailable(
        `${this.writesRefused} (declaring ${kind} this way would change the writer's declaration)`,
      )
    }
    this.#parts.catalog.define(kind, options)
  }

  process(name: string): LocalProcess {
    this.checkOpen()
    return this.#parts.processes.create(name)
  }

  /**
   * A process with a pid chosen by the caller: the network server lets a client name its
   * session's child processes (`<session pid>.<n>`) so the client knows the pid without a round
   * trip. The pid must be on this node and not belong to a live process; the caller must never
   * hand out a pid twice (a session's child counter only grows).
   */
  processWithId(id: string, name: string): LocalProcess {
    this.checkOpen()
    return this.#parts.processes.createWithId(id, name)
  }

  spawn(name: string, fn: ProcessFunction, options: SpawnOptions = {}): LocalProcess {
    if (typeof fn !== 'function') throw new InvalidArgument('spawn needs a function')
    const proc = this.process(name)
    return runProcess(proc, fn, options)
  }

  /**
   * How many records `pid` owns right now, over every kind (KV keys, group memberships and
   * names it owns included). Reads the per-owner index of each kind: O(kinds), no record scan.
   * The server uses it for its per-session record limit.
   */
  ownedCount(pid: string): number {
    let count = this.#parts.backed?.ownedCount(pid) ?? 0
    for (const store of this.#parts.catalog.stores()) count += store.byOwner.get(pid)?.size ?? 0
    return count
  }

  /** The live process with this pid. */
  processById(pid: string): LocalProcess | undefined {
    return this.#parts.processes.get(pid)
  }

  /** Throws `ProcessExited` unless `pid` is a live process of this dataspace. */
  checkProcess(pid: string): LocalProcess {
    return this.#parts.processes.check(pid)
  }

  isAlive(pid: string): boolean {
    return this.#parts.processes.isAlive(pid)
  }

  deliver(pid: string, from: string, message: unknown): boolean {
    return this.#parts.processes.get(pid)?.deliver(from, message) === true
  }

  /** Removes an exited process from the table (its records are already retracted). */
  forgetProcess(proc: LocalProcess): void {
    this.#parts.processes.forget(proc)
  }

  // Reads are `async` so that bad input rejects rather than throws: every method returns a Promise.
  async get<T = unknown>(
    kind: string,
    id: string | number,
    options: { signal?: AbortSignal } = {},
  ): Promise<DataspaceRecord<T> | undefined> {
    this.beginRead()
    options.signal?.throwIfAborted()
    const store = this.#parts.catalog.get(checkKind(kind, true))
    const key = checkId(id)
    if (store?.resident === false) {
      return this.released(
        (await this.#parts.reads.get(kind, key)) as DataspaceRecord<T> | undefined,
      )
    }
    return this.released(store?.records.get(key) as DataspaceRecord<T> | undefined)
  }

  /**
   * `value`, read now, once the current revision is durable: every read of the public API goes
   * out through here, so no process sees a commit a crash could still undo (docs/design.md).
   * The writer itself is acknowledged only when its commit is durable, so it reads its own writes.
   */
  released<T>(value: T): T | Promise<T> {
    return whenDurable(this.gate, this.revision, value)
  }

  async list<T = unknown>(kind: string, options: ListOptions = {}): Promise<ListResult<T>> {
    this.beginRead()
    options.signal?.throwIfAborted()
    checkKind(kind, true)
    const selector = this.compile(kind, options)
    const limit = options.limit === undefined ? undefined : checkLimit(options.limit)
    if (!this.#parts.catalog.isResident(kind)) {
      const page = await this.#parts.reads.list(kind, options, selector, limit)
      return this.released(page as ListResult<T>)
    }
    return this.released(
      listPage(
        this.#parts.catalog.get(kind),
        this.#parts.history,
        this.revision,
        kind,
        selector,
        limit,
        options.continue,
      ) as ListResult<T>,
    )
  }

  async explain(kind: string, options: Selector = {}): Promise<ExplainResult> {
    this.beginRead()
    checkKind(kind, true)
    const selector = this.compile(kind, options)
    const store = this.#parts.catalog.get(kind)
    if (store === undefined) {
      return { index: null, scanned: 'full', candidates: 0, unknownKind: true }
    }
    if (store.resident === false) return this.#parts.reads.explain(kind, options)
    const chosen = plan(store, selector)
    return {
      index: chosen.index,
      scanned: chosen.index === null ? 'full' : 'index',
      candidates: chosen.estimate,
    }
  }

  watch<T = unknown>(kind: string, options: WatchOptions = {}): Watch<T> {
    this.beginRead()
    this.#checkNotClosing()
    checkKind(kind, true)
    const selector = this.compile(kind, options)
    const bufferSize =
      options.bufferSize === undefined
        ? this.#parts.options.watchBufferSize
        : checkPositive('bufferSize', options.bufferSize)
    const bounds = { bufferSize, bufferBytes: this.#parts.options.watchBufferBytes }
    if (this.#parts.catalog.isResident(kind)) {
      return this.#parts.watches.watch<T>(kind, selector, options, bounds)
    }
    // A follower's feed does not carry the previous versions that a non-resident kind's
    // events need (the engine does not hold them); a cluster node reads other nodes' commits
    // from that feed too.
    if (this.writesRefused !== undefined) {
      throw new InvalidArgument(
        `${kind} is non-resident: a follower cannot watch it (its feed lacks the previous versions events carry); watch it on the writer`,
      )
    }
    if (this.clustered) {
      throw new InvalidArgument(
        `${kind} is non-resident: a cluster node cannot watch it (other nodes' commits reach it through a feed that lacks the previous versions events carry)`,
      )
    }
    // A non-resident kind's snapshot is read from the backend; its changes come from commits.
    return this.#parts.watches.watch<T>(kind, selector, options, bounds, (later) => {
      this.#parts.reads
        .snapshot(kind, options, selector, (records, revision) =>
          later.deliver({ type: 'snapshot', records, revision }),
        )
        .catch((error: unknown) => later.fail(error))
      return undefined
    })
  }

  /**
   * Observes a kind synchronously, Yjs-style: `onCommit` runs inside each commit, once, with that
   * commit's events for the selector. Returns the snapshot taken atomically with subscribing. The
   * facades build their monitors on this. `onCommit` must not write (schedule writes instead);
   * `onClose` runs if the dataspace closes first.
   */
  observe<T = unknown>(
    kind: string,
    options: Selector,
    onCommit: (events: WatchEvent<T>[]) => void,
    onClose?: (reason: CloseReason) => void,
  ): Observation<T> {
    this.beginRead()
    this.#checkNotClosing()
    checkKind(kind, true)
    this.#parts.catalog.checkResident(kind, 'observe')
    return this.#parts.watches.observe(kind, this.compile(kind, options), onCommit, onClose)
  }

  peek(kind: string, id: string): DataspaceRecord | undefined {
    return this.#parts.catalog.get(kind)?.records.get(id)
  }

  /** The records matching a selector, in id order, synchronously (the facades read with this). */
  query(kind: string, selector: Selector = {}): DataspaceRecord[] {
    this.beginRead()
    const store = this.#parts.catalog.get(checkKind(kind, true))
    if (store === undefined) return []
    this.#parts.catalog.checkResident(kind, 'query')
    const compiled = this.compile(kind, selector)
    return select(store, compiled, plan(store, compiled))
  }

  /** Compiles a selector against the kind's declared fields. */
  compile(kind: string, selector: Selector): CompiledSelector {
    return this.#parts.catalog.compile(kind, selector)
  }

  /** Every public operation starts here: refuse when closed, then commit any due expiries. */
  beginRead(): void {
    this.checkOpen()
    this.#parts.expiry.expireDue()
  }

  /** A consumer that watches again when its watch ends must not outlive `close` with it. */
  #checkNotClosing(): void {
    if (this.#closing) throw new Closed('the dataspace is closing')
  }

  checkOpen(): void {
    if (this.#closed) throw new Closed('the dataspace is closed')
  }

  /**
   * THE commit (commit.ts): stages `build` as `actor` (a pid, or `null` for the system, which
   * may write reserved kinds and set owners) after `reads`, applies it as one revision, and
   * resolves once it is durable (at once in memory). This is how the facades write; anything
   * `build` throws aborts the whole commit.
   */
  async commit<R>(
    actor: string | null,
    build: (tx: Transaction) => R,
    reads: readonly ReadSpec[] = [],
  ): Promise<{ revision: number; result: R }> {
    this.checkOpen()
    const proc = actor === null ? null : this.#parts.processes.check(actor)
    return this.#parts.commits.commit(proc, build, reads)
  }

  /** Applies a staged system transaction as one commit, without waiting for durability. */
  applyStaged(tx: Transaction): number {
    return this.#parts.commits.applyStaged(tx)
  }

  /**
   * A system commit staged by `build`: applied now, or on a cluster node at its next write turn
   * (deferred to a microtask while watchers are being told). See `CommitPath.system`.
   */
  system(build: (tx: Transaction) => void): void {
    this.#parts.commits.system(build)
  }

  /**
   * What this engine is to its store: its only `writer` (memory, SQLite, or PostgreSQL's single
   * server), a `follower` that writes nothing, or one `node` of a cluster that writes in turns.
   */
  get role(): 'writer' | 'follower' | 'node' {
    return this.writesRefused !== undefined ? 'follower' : this.clustered ? 'node' : 'writer'
  }

  /** True on a node of a cluster (a backend opened with `cluster: true`): it writes in turns. */
  get clustered(): boolean {
    return this.#parts.commits.clustered
  }

  /** The name of the store this engine opened, when its backend gives one (`LoadedState.store`). */
  get storeName(): string | undefined {
    return this.#parts.state?.store
  }

  /**
   * Runs `use` with a transaction context that sees the records `reads` name (non-resident
   * kinds, read from the backend first), synchronously right after the read; with no reads, at
   * once. `use` must apply whatever it stages before it returns.
   */
  withReads<R>(
    reads: readonly ReadSpec[],
    use: (context: TransactionContext, results: readonly ReadResult[]) => R,
  ): R | Promise<R> {
    return this.#parts.reads.withReads(reads, use)
  }

  /** The reads a write of `selector` on `kind` needs first: none for a resident kind. */
  readsFor(kind: string, selector: Selector, need: number): ReadSpec[] {
    return this.#parts.reads.readsFor(kind, selector, need)
  }

  /** The non-resident kinds in which `pid` holds records (an exit reads them). */
  nonResidentKindsOf(pid: string): string[] {
    return this.#parts.reads.kindsOwnedBy(pid)
  }

  /** Retries a backend read that must happen (an exit's) until it succeeds or the dataspace closes. */
  retryRead<R>(read: () => Promise<R>): Promise<R> {
    return this.#parts.reads.retryRead(read)
  }

  /** Sends `message` to the watchers of record `kind/id`; resolves with how many got it. */
  messageRecordWatchers(
    from: string,
    kind: string,
    id: string,
    message: unknown,
  ): number | Promise<number> {
    const deliver = (record: DataspaceRecord | undefined): number =>
      this.#parts.watches.hub.message(kind, id, record, {
        type: 'message',
        from,
        kind,
        id,
        message,
      })
    const store = this.#parts.catalog.get(kind)
    if (store?.resident !== false) return deliver(store?.records.get(id))
    return this.#parts.reads.record(kind, id, deliver)
  }

  /** Lets `send` reach targets the kernel does not know (`{ group }`, `{ name }`): see `Kernel`. */
  registerTarget(resolver: TargetResolver): void {
    this.#targets.push(resolver)
  }

  /** The pids a `{ group }` or `{ name }` target stands for (a stale name fence is `Conflict`). */
  resolveTarget(target: SendTarget): readonly string[] {
    if (target !== null && typeof target === 'object') {
      for (const resolve of this.#targets) {
        const pids = resolve(target)
        if (pids !== undefined) return pids
      }
    }
    throw new InvalidArgument(
      `cannot send to ${describe(target)}: expected a pid, { kind, id }, { group } or { name }`,
    )
  }

  /** Exits every process, ends every watch; later calls fail with `Closed`. */
  async close(): Promise<void> {
    if (this.#closed) return
    // Its sessions' leases are no longer renewed: they run out in the store, unless their
    // clients resume them on another node first.
    await this.#parts.leases?.stop()
    // A cluster node's exits below take write turns, which catch up through its feed reader.
    if (this.#parts.turn === undefined) await this.#parts.follower?.stop()
    // With a durable store, the processes it keeps (the server's sessions) outlive this run:
    // their clients resume them after a restart. Every other process exits, as in memory.
    const kept = this.#parts.runtime?.keptPids() ?? new Set<string>()
    const exiting = [...this.#parts.processes.values()].filter((proc) => !kept.has(proc.id))
    await Promise.all(exiting.map((proc) => proc.exit('shutdown')))
    // Watches end while the store still takes writes: each retracts its `$watch` record, which
    // would otherwise outlive it in a durable store (a cluster node's, in one last turn).
    const reason: CloseReason = 'dataspace-closed'
    this.#closing = true
    this.#parts.watches.closeAll(reason)
    if (this.#parts.turn !== undefined) {
      await this.#parts.commits.inTurn(() => undefined, true)
      await this.#parts.follower?.stop()
    }
    this.#closed = true
    await this.#parts.runtime?.close()
    await this.#parts.turn?.close()
    this.#parts.expiry.stop()
  }
}
