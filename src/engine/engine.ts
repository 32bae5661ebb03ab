import { BackendRuntime } from './storage/runtime.js'
import type { RefusedCommit } from './storage/runtime.js'
import type { AnswerHold } from './storage/answer-queue.js'
import type {
  AnswerKey,
  Backend,
  LoadedState,
  StoredAnswer,
  StoredSession,
} from './ports/backend.js'
import { BackedReads, viewStore } from './backed-reads.js'
import type { ReadResult, ReadSpec } from './backed-reads.js'
import { runProcess } from '../model/run-process.js'
import { Closed, InvalidArgument, ProcessExited } from '../errors/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import { compileSelector } from './compiled-selector.js'
import { durableGate, whenDurable } from '../streams/durable-gate.js'
import type { DurableGate } from '../streams/durable-gate.js'
import { ExpiryQueue } from './expiry-queue.js'
import { History } from './history.js'
import type { Change, Commit } from './history.js'
import { KindStore } from './kind-store.js'
import { backedPage, listPage, readContinue } from './list-page.js'
import { MemoryAccount, resolveByteBounds } from './memory-account.js'
import type { ByteBounds } from './memory-account.js'
import { LocalProcess } from './process.js'
import type { ProcessHost } from './process.js'
import { PendingCommits } from './pending-commits.js'
import { ProcessOps } from './process-ops.js'
import { plan, select } from './query-planner.js'
import { recordBytes } from './record-bytes.js'
import { Transaction } from './transaction.js'
import type { TransactionContext } from './transaction.js'
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
import { escapeGlob } from '../query/index.js'
import {
  checkId,
  checkKind,
  checkLimit,
  checkText,
  DEFAULT_MAX_VALUE_BYTES,
  describe,
  freezeJson,
} from '../model/validate.js'
import { WatchRegistry } from './watch-registry.js'
import type { Observation, WatchContext } from './watch-registry.js'

/** Options of {@link createDataspace}. Every bound has a default; all are per dataspace. */
export interface DataspaceOptions {
  /** The node name in pids (`<node>/<name>#<n>`); default `local`. */
  readonly node?: string
  /**
   * Where commits become durable (`docs/backends.md`): `memory` (default), or a backend such as
   * `sqliteBackend({ path })`. `createDataspace` takes backends that load synchronously (memory,
   * SQLite); `openDataspace` takes any (PostgreSQL loads over the network).
   */
  readonly backend?: 'memory' | Backend
  /** Changes kept for watch resume and consistent pagination (default 100 000). */
  readonly historySize?: number
  /** Default per-watch queue bound in events (default 10 000). */
  readonly watchBufferSize?: number
  /** Per-process mailbox bound in messages (default 10 000). */
  readonly mailboxSize?: number
  /**
   * The largest value a client may hand the engine, as the UTF-8 size of its JSON encoding
   * (default 1 MiB): record data, messages, metadata, KV values. Larger is `TooLarge`.
   */
  readonly maxValueBytes?: number
  /**
   * The most estimated bytes the engine may hold: resident records, the history and every watch
   * queue and mailbox (docs/server.md, "Memory"). A write that would grow the records past it
   * is `TooLarge` with `limit: 'memoryBudgetBytes'`; retracts, deletes, expiries and exits always
   * work. Default: half of V8's heap limit (`v8.getHeapStatistics().heap_size_limit`).
   */
  readonly memoryBudgetBytes?: number
  /**
   * Estimated bytes of old versions the history keeps for watch resume and pagination
   * (default ⅛ of the budget, at most 256 MiB; at most half the budget). The oldest commits
   * go first; a watch resuming from before them gets `reset` + a snapshot.
   */
  readonly historyBytes?: number
  /**
   * Default per-watch queue bound in estimated bytes (default 1/64 of the budget, from 64 KiB
   * to 64 MiB): a watch whose unread events pass it is reset (`reset` + snapshot).
   */
  readonly watchBufferBytes?: number
  /** Per-process mailbox bound in estimated bytes (default 1/64 of the budget, 64 KiB–16 MiB). */
  readonly mailboxBytes?: number
  /**
   * How long a write waits for a durable backend before it fails `Unavailable` (default 10 s);
   * the commit is still retried and may be applied later.
   */
  readonly durableTimeoutMs?: number
  /** Where a durable backend's warnings go (failed writes being retried); default `console.warn`. */
  readonly log?: { warn(message: string, fields?: Record<string, unknown>): void }
}

/** Counters for observability; metrics (and tests) read them. */
export interface DataspaceStats {
  readonly revision: number
  readonly records: number
  readonly kinds: number
  readonly processes: number
  readonly watchers: number
  readonly watchResets: number
  readonly droppedWatchMessages: number
  readonly droppedMailboxMessages: number
  readonly historyFloor: number
  /** Estimated bytes of old versions held by the history (at most `historyBytes` + one commit). */
  readonly historyBytes: number
  /** Commits dropped from the history to stay within its caps (changes or bytes). */
  readonly historyTrimmedCommits: number
  /** Of `watchResets`, those because a queue passed its byte cap or the budget shed it. */
  readonly watchByteResets: number
  /** Estimated bytes of resident records. */
  readonly recordBytes: number
  /** Estimated bytes queued in every watch. */
  readonly watchQueueBytes: number
  /** Estimated bytes queued in every mailbox. */
  readonly mailboxBytes: number
  /** Everything the budget counts: records, history, watch queues and mailboxes. */
  readonly memoryUsedBytes: number
  readonly memoryBudgetBytes: number
  /** Writes refused because they would have grown the records past the budget. */
  readonly memoryRefusedWrites: number
}

/**
 * The in-process dataspace: the engine. It holds the records, their indexes, the watch hub and
 * the process table, and does no I/O. Every write is staged in a {@link Transaction}, then applied
 * as ONE commit with the next revision, then dispatched to watchers once.
 */
export class Engine implements Kernel, WatchContext {
  readonly #targets: TargetResolver[] = []
  readonly node: string
  readonly #stores = new Map<string, KindStore>()
  readonly #history: History
  readonly #expiries = new ExpiryQueue()
  readonly #processes = new Map<string, LocalProcess>()
  readonly #watches: WatchRegistry
  readonly #options: Required<
    Pick<DataspaceOptions, 'historySize' | 'watchBufferSize' | 'mailboxSize' | 'maxValueBytes'>
  > &
    ByteBounds
  readonly #memory: MemoryAccount
  readonly #ops: ProcessHost
  readonly #log: NonNullable<DataspaceOptions['log']>
  #revision = 0
  #pidCounter = 0
  #droppedMailbox = 0
  #closed = false
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity
  #dispatching = false

  readonly #runtime: BackendRuntime | undefined
  /** Commits not yet durable, kept to undo one the backend refuses (durable backends only). */
  readonly #pending: PendingCommits | undefined
  /** Reads of non-resident kinds: only with a durable backend that answers queries. */
  readonly #backed: BackedReads | undefined
  /**
   * Holds what readers see until it is durable (durable-gate.ts); `undefined` on the memory
   * backend, where a commit is as durable as it will ever be once applied.
   */
  readonly gate: DurableGate | undefined
  /** Sessions the backend had when it was opened (the server adopts them). */
  readonly restoredSessions: readonly StoredSession[]
  /** Stored answers of those sessions' write calls, oldest first (the server restores them). */
  readonly restoredAnswers: readonly StoredAnswer[]
  /** The server's hook: true when it takes over a writer's wait for durability (its answer). */
  #deferDurable: ((revision: number, writer: boolean) => boolean) | undefined
  /** Pids of persisted sessions and their children: kept, not exited, when a durable store closes. */
  readonly #sessionPids = new Map<string, readonly string[]>()

  /** @param loaded the backend's state, when `openDataspace` loaded it already. */
  constructor(options: DataspaceOptions = {}, loaded?: LoadedState) {
    const backend = options.backend ?? 'memory'
    if (
      backend !== 'memory' &&
      (typeof backend !== 'object' || typeof backend.write !== 'function')
    ) {
      throw new InvalidArgument(
        `backend must be "memory" or a backend object (sqliteBackend, postgresBackend), got ${JSON.stringify(backend)}`,
      )
    }
    let state = loaded
    if (state === undefined && backend !== 'memory') {
      const openSync = (backend as Partial<{ openSync(): LoadedState }>).openSync
      if (typeof openSync !== 'function') {
        throw new InvalidArgument(
          `the ${backend.name} backend loads asynchronously: use await openDataspace({ backend })`,
        )
      }
      state = openSync.call(backend)
    }
    this.node = options.node ?? 'local'
    if (this.node.length === 0 || /[/#]/.test(this.node))
      throw new InvalidArgument('node must be non-empty, without "/" or "#"')
    this.#options = Object.freeze({
      historySize: positive('historySize', options.historySize ?? 100_000),
      watchBufferSize: positive('watchBufferSize', options.watchBufferSize ?? 10_000),
      mailboxSize: positive('mailboxSize', options.mailboxSize ?? 10_000),
      maxValueBytes: positive('maxValueBytes', options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES),
      ...resolveByteBounds(options),
    })
    this.#memory = new MemoryAccount(this.#options)
    this.#log = options.log ?? { warn: (m, f) => console.warn(m, f) }
    this.#history = new History(
      this.#options.historySize,
      this.#options.historyBytes,
      state?.revision ?? 0,
    )
    this.#ops = new ProcessOps(this)
    this.#watches = new WatchRegistry(this, this.#memory.watchQueues)
    this.restoredSessions = state?.sessions ?? []
    this.restoredAnswers = state?.answers ?? []
    this.#runtime =
      backend === 'memory' || !backend.capabilities.durable
        ? undefined
        : new BackendRuntime(backend, state?.revision ?? 0, {
            log: this.#log,
            ackTimeoutMs: positive('durableTimeoutMs', options.durableTimeoutMs ?? 10_000),
            onDurable: () => {
              this.#pending?.settle(this.#runtime?.durableRevision ?? 0)
              this.#backed?.collect()
            },
            onRefused: (refused) => this.#undoRefused(refused),
          })
    this.#pending = this.#runtime === undefined ? undefined : new PendingCommits()
    const runtime = this.#runtime
    this.gate = runtime === undefined ? undefined : durableGate(runtime)
    this.#backed =
      runtime !== undefined && backend !== 'memory' && canQuery(backend)
        ? new BackedReads(backend, () => runtime.durableRevision)
        : undefined
    if (state !== undefined) this.#install(state)
  }

  /**
   * Loads a backend's state: kinds first (their indexes), then records, at the stored revision.
   * The processes of persisted sessions come back (the server adopts them, with a fresh lease);
   * every other owner died with the previous server, so what it owned is retracted now, in one
   * commit, as its exit would have done.
   */
  #install(state: LoadedState): void {
    this.#revision = state.revision
    for (const kind of state.kinds) {
      const store = this.storeFor(kind.kind)
      store.closedFields = kind.fields === undefined ? undefined : new Set(kind.fields)
      store.setIndexes([...kind.indexes])
      if (kind.resident === false && this.#backed !== undefined) store.resident = false
    }
    this.#backed?.seedOwners(state.owned ?? [])
    for (const record of state.records) {
      const frozen = freezeJson(record, 'record', Infinity)
      this.storeFor(record.kind).put(frozen, undefined)
      this.#memory.records += recordBytes(frozen)
      if (frozen.expiresAt !== undefined) {
        this.#expiries.push({ at: frozen.expiresAt, kind: frozen.kind, id: frozen.id })
      }
    }
    // New pids must not repeat one of the previous run's: restored sessions still use theirs,
    // and other stores may still mention the others.
    for (const pid of storedPids(state)) {
      const n = Number(/#(\d+)/.exec(pid)?.[1] ?? 0)
      if (n > this.#pidCounter) this.#pidCounter = n
    }
    for (const session of state.sessions) {
      this.#register(session.pid, session.name)
      for (const child of session.children) this.#register(child.pid, child.name)
      this.#sessionPids.set(session.id, [session.pid, ...session.children.map((c) => c.pid)])
    }
    const tx = new Transaction(this, null)
    for (const store of this.#stores.values()) {
      for (const [owner, owned] of store.byOwner) {
        if (this.#processes.has(owner)) continue
        for (const record of owned.values()) tx.remove(record, 'owner-exit')
      }
    }
    this.apply(tx)
    const next = this.#expiries.peek()
    if (next !== undefined) this.#armTimer(next.at)
    const backed = this.#backed
    if (backed !== undefined) {
      const dead = [...backed.owners()].filter(([owner]) => !this.#processes.has(owner))
      if (dead.length > 0) backed.ready = this.#reapNonResident(dead)
    }
  }

  /**
   * The non-resident part of start-up reaping: what dead owners held in non-resident kinds is
   * read from the backend and retracted in one commit (after the resident part's). Every other
   * read of a non-resident kind waits for it; `openDataspace` resolves after it.
   */
  async #reapNonResident(
    dead: readonly (readonly [owner: string, kinds: string[]])[],
  ): Promise<void> {
    const reads = dead.flatMap(([owner, kinds]) =>
      kinds.map((kind) => this.#readSpec(kind, { owner }, Infinity)),
    )
    const revision = await this.retryRead(() =>
      (this.#backed as BackedReads).read(reads, (results) => this.#removeRead(results), {
        startup: true,
      }),
    )
    await this.durable(revision)
  }

  /**
   * The backend refused the commit at `refused.revision` for its content (its writers get the
   * error; an empty commit is stored in its place). Memory must equal the store again: every key
   * it changed that no later commit changed goes back, in one new commit that watchers see as
   * ordinary changes and that is stored like any other, to the version the store holds. A
   * restored version whose owner has exited since is removed in the commit after: it must not
   * outlive its owner.
   */
  #undoRefused(refused: RefusedCommit): void {
    const undos = this.#pending?.refuse(refused.revision) ?? []
    if (undos.length === 0) return
    const undo = (): void => {
      if (this.#closed) return
      const tx = new Transaction(this, null)
      for (const { kind, id, current, target } of undos) tx.restore(kind, id, current, target)
      this.apply(tx)
      const orphans = new Transaction(this, null)
      for (const { target } of undos) {
        if (target?.owner == null || this.#processes.get(target.owner)?.alive === true) continue
        orphans.remove(target, 'owner-exit')
      }
      this.apply(orphans)
    }
    if (this.#dispatching) queueMicrotask(undo)
    else undo()
  }

  /** Applies, as one commit, the removal of every record `results` hold (reason `owner-exit`). */
  #removeRead(results: readonly ReadResult[]): number {
    const tx = new Transaction(this, null)
    for (const result of results) {
      for (const record of result.records) tx.remove(record, 'owner-exit')
    }
    return this.apply(tx)
  }

  /**
   * Retries a backend read that must happen (an exit's, start-up reaping) until it succeeds or
   * the dataspace closes, with backoff, as the runtime retries writes.
   */
  async retryRead<R>(read: () => Promise<R>): Promise<R> {
    for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await read()
      } catch (error) {
        if (this.#closed) throw error
        this.#log.warn('a read of a non-resident kind failed; retrying', {
          error: String(error),
          delayMs: delay,
        })
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
  }
  /**
   * Settles once start-up is complete: what owners that died with the previous server held in
   * non-resident kinds has been retracted (resident kinds are done in the constructor).
   */
  ready(): Promise<void> {
    return this.#backed?.ready ?? Promise.resolve()
  }

  /** True when commits are written to a durable backend before they are acknowledged. */
  get durableBackend(): boolean {
    return this.#runtime !== undefined
  }

  /**
   * Settles when `revision` is durable; `undefined` when it already is or nothing persists.
   * `writer`: the caller made the commit at `revision`, and gets the backend's error if that
   * commit is refused (docs/backends.md, "Refused writes").
   */
  durable(revision: number, writer = false): Promise<void> | undefined {
    if (this.#deferDurable?.(revision, writer) === true) return undefined
    return this.#runtime?.waitFor(revision, writer)
  }

  /**
   * Lets the server answer write calls exactly once across restarts (src/server/ws/
   * durable-answers.ts): `defer(revision)` is asked each time a writer is about to wait for its
   * commit to be durable; when it returns true the writer resolves at once and the server, having
   * stored the answer with that commit ({@link holdAnswer}), waits for durability itself.
   */
  deferDurability(defer: ((revision: number, writer: boolean) => boolean) | undefined): void {
    this.#deferDurable = defer
  }

  /** A place for the answer of the commit at `revision` in its batch (durable backends only). */
  holdAnswer(revision: number): AnswerHold | undefined {
    return this.#runtime?.answers.hold(revision)
  }

  /** Forgets a stored answer. */
  dropAnswer(key: AnswerKey): void {
    this.#runtime?.answers.drop(key)
  }

  /** Persists a network session (the server's), so that it can be resumed after a restart. */
  persistSession(session: StoredSession): void {
    this.#sessionPids.set(session.id, [session.pid, ...session.children.map((c) => c.pid)])
    this.#runtime?.putSession(session)
  }

  /** Forgets a persisted session (it ended). */
  dropSession(id: string): void {
    this.#sessionPids.delete(id)
    this.#runtime?.deleteSession(id)
  }

  get revision(): number {
    return this.#revision
  }

  /** The bound on one client value's JSON encoding, in bytes (`maxValueBytes`). */
  get maxValueBytes(): number {
    return this.#options.maxValueBytes
  }

  get history(): History {
    return this.#history
  }

  get closed(): boolean {
    return this.#closed
  }

  now(): number {
    return Date.now()
  }

  store(kind: string): KindStore | undefined {
    return this.#stores.get(kind)
  }

  /** The store of `kind`, created on first write. */
  storeFor(kind: string): KindStore {
    let store = this.#stores.get(kind)
    if (store === undefined) this.#stores.set(kind, (store = new KindStore(kind)))
    return store
  }

  get stats(): DataspaceStats {
    this.#memory.watches = this.#watches.hub.size
    this.#memory.processes = this.#processes.size
    let records = 0
    for (const store of this.#stores.values()) records += store.size
    let dropped = this.#droppedMailbox
    for (const proc of this.#processes.values()) dropped += proc.droppedTotal
    return {
      revision: this.#revision,
      records,
      kinds: this.#stores.size,
      processes: this.#processes.size,
      watchers: this.#watches.hub.size,
      watchResets: this.#watches.counters.resets,
      droppedWatchMessages: this.#watches.counters.droppedMessages,
      droppedMailboxMessages: dropped,
      historyFloor: this.#history.floor,
      historyBytes: this.#history.bytes,
      historyTrimmedCommits: this.#history.trimmed,
      watchByteResets: this.#watches.counters.byteResets,
      recordBytes: this.#memory.records,
      watchQueueBytes: this.#memory.watchQueues.bytes,
      mailboxBytes: this.#memory.mailboxes.bytes,
      memoryUsedBytes: this.#memory.used,
      memoryBudgetBytes: this.#memory.budget,
      memoryRefusedWrites: this.#memory.refused,
    }
  }

  // Applied synchronously (a caller that forgets to await still gets its kind); async so that bad input rejects.
  async defineKind<T = unknown>(kind: string, options: KindOptions<T> = {}): Promise<void> {
    this.checkOpen()
    checkKind(kind)
    const fields = options.fields === undefined ? undefined : checkPaths('fields', options.fields)
    const indexes = checkPaths('indexes', options.indexes ?? [])
    if (fields !== undefined) {
      const undeclared = indexes.filter((path) => !fields.includes(path))
      if (undeclared.length > 0)
        throw new InvalidArgument(
          `indexes ${undeclared.join(', ')} are not among the declared fields`,
        )
    }
    if (
      options.schema !== undefined &&
      typeof options.schema['~standard']?.validate !== 'function'
    ) {
      throw new InvalidArgument(
        'schema must be a Standard Schema validator (zod, valibot, arktype, …)',
      )
    }
    const resident = this.#residency(kind, options.resident)
    const store = this.storeFor(kind)
    store.schema = options.schema
    store.closedFields = fields === undefined ? undefined : new Set(fields)
    store.resident = resident
    // A non-resident kind's indexes are the backend's; in memory they only shape claim views.
    store.setIndexes(indexes)
    this.#runtime?.declareKind({
      kind,
      ...(fields === undefined ? {} : { fields }),
      indexes,
      ...(resident ? {} : { resident: false }),
    })
  }

  /**
   * Whether `kind` stays resident after a declaration asking for `wanted`. Residency is set
   * before the kind holds records and never changes: the engine cannot hand records to a backend
   * it never loaded them from, or load a table it was told is too large. Without a backend that
   * answers queries every kind is resident (DESIGN.md §4), so `resident: false` is accepted and
   * has no effect.
   */
  #residency(kind: string, wanted: unknown): boolean {
    if (wanted !== undefined && typeof wanted !== 'boolean') {
      throw new InvalidArgument(`resident must be a boolean, got ${describe(wanted)}`)
    }
    const store = this.#stores.get(kind)
    const current = store?.resident ?? true
    if (this.#backed === undefined || wanted === undefined || wanted === current) return current
    if (!current) {
      throw new InvalidArgument(
        `${kind} is non-resident; a kind's residency cannot change once declared`,
      )
    }
    if (store !== undefined && store.size > 0) {
      throw new InvalidArgument(
        `${kind} already holds ${store.size} records in memory; declare resident: false before its first record`,
      )
    }
    return false
  }

  process(name: string): LocalProcess {
    this.checkOpen()
    checkProcessName(name)
    return this.#register(`${this.node}/${name}#${++this.#pidCounter}`, name)
  }

  /**
   * A process with a pid chosen by the caller: the network server lets a client name its
   * session's child processes (`<session pid>.<n>`) so the client knows the pid without a round
   * trip. The pid must be on this node and not belong to a live process; the caller must never
   * hand out a pid twice (a session's child counter only grows).
   */
  processWithId(id: string, name: string): LocalProcess {
    this.checkOpen()
    checkProcessName(name)
    if (typeof id !== 'string' || !id.startsWith(`${this.node}/`) || id.length > 400) {
      throw new InvalidArgument(`pid must start with "${this.node}/"`)
    }
    checkText('pid', id)
    if (this.#processes.has(id)) throw new InvalidArgument(`pid ${id} is already a live process`)
    return this.#register(id, name)
  }

  #register(id: string, name: string): LocalProcess {
    const proc = new LocalProcess(this.#ops, id, name, {
      size: this.#options.mailboxSize,
      bytes: this.#options.mailboxBytes,
      meter: this.#memory.mailboxes,
    })
    this.#processes.set(id, proc)
    return proc
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
    let count = this.#backed?.ownedCount(pid) ?? 0
    for (const store of this.#stores.values()) count += store.byOwner.get(pid)?.size ?? 0
    return count
  }

  /** The live process with this pid. */
  processById(pid: string): LocalProcess | undefined {
    return this.#processes.get(pid)
  }

  // Reads are `async` so that bad input rejects rather than throws: every method returns a Promise.
  async get<T = unknown>(
    kind: string,
    id: string | number,
    options: { signal?: AbortSignal } = {},
  ): Promise<DataspaceRecord<T> | undefined> {
    this.beginRead()
    options.signal?.throwIfAborted()
    const store = this.#stores.get(checkKind(kind, true))
    const key = checkId(id)
    if (store?.resident === false) {
      const read = this.#readSpec(kind, { id: escapeGlob(key) }, 1)
      const record = await this.#backedReads().read([read], ([result]) => result?.records[0])
      return this.released(record as DataspaceRecord<T> | undefined)
    }
    return this.released(store?.records.get(key) as DataspaceRecord<T> | undefined)
  }

  /**
   * `value`, read now, once the current revision is durable: every read of the public API goes
   * out through here, so no process sees a commit a crash could still undo (DESIGN §5). The
   * writer itself is acknowledged only when its commit is durable, so it reads its own writes.
   */
  released<T>(value: T): T | Promise<T> {
    return whenDurable(this.gate, this.#revision, value)
  }

  async list<T = unknown>(kind: string, options: ListOptions = {}): Promise<ListResult<T>> {
    this.beginRead()
    options.signal?.throwIfAborted()
    checkKind(kind, true)
    const selector = this.compile(kind, options)
    const limit = options.limit === undefined ? undefined : checkLimit(options.limit)
    if (this.#stores.get(kind)?.resident === false) {
      const after =
        options.continue === undefined
          ? undefined
          : readContinue(options.continue, kind, selector).a
      const read = this.#readSpec(kind, options, limit === undefined ? Infinity : limit + 1, after)
      const page = await this.#backedReads().read([read], ([result]) =>
        backedPage(result?.records ?? [], this.#revision, kind, selector, limit),
      )
      return this.released(page as ListResult<T>)
    }
    return this.released(
      listPage(
        this.#stores.get(kind),
        this.#history,
        this.#revision,
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
    const store = this.#stores.get(kind)
    if (store === undefined) {
      return { index: null, scanned: 'full', candidates: 0, unknownKind: true }
    }
    if (store.resident === false) {
      const backend = this.#backedBackend()
      const chosen = await backend.explainQuery(kind, sourceSelector(options))
      return {
        index: chosen.index,
        scanned: chosen.index === null ? 'full' : 'index',
        candidates: chosen.rows ?? 0,
        backend: { name: backend.name, detail: chosen.detail },
      }
    }
    const chosen = plan(store, selector)
    return {
      index: chosen.index,
      scanned: chosen.index === null ? 'full' : 'index',
      candidates: chosen.estimate,
    }
  }

  watch<T = unknown>(kind: string, options: WatchOptions = {}): Watch<T> {
    this.beginRead()
    checkKind(kind, true)
    const selector = this.compile(kind, options)
    const bufferSize =
      options.bufferSize === undefined
        ? this.#options.watchBufferSize
        : positive('bufferSize', options.bufferSize)
    const bounds = { bufferSize, bufferBytes: this.#options.watchBufferBytes }
    if (this.#stores.get(kind)?.resident !== false) {
      return this.#watches.watch<T>(kind, selector, options, bounds)
    }
    // A non-resident kind's snapshot is read from the backend; its changes come from commits.
    const read = this.#readSpec(kind, options, Infinity)
    return this.#watches.watch<T>(kind, selector, options, bounds, (later) => {
      this.#backedReads()
        .read([read], ([result]) =>
          later.deliver({
            type: 'snapshot',
            records: [...(result?.records ?? [])],
            revision: this.#revision,
          }),
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
    checkKind(kind, true)
    this.#checkResident(kind, 'observe')
    return this.#watches.observe(kind, this.compile(kind, options), onCommit, onClose)
  }

  /** The synchronous reads (`observe`, `query`) serve resident kinds only. */
  #checkResident(kind: string, what: string): void {
    if (this.#stores.get(kind)?.resident === false) {
      throw new InvalidArgument(`${what} reads resident kinds only; ${kind} is non-resident`)
    }
  }

  /** Compiles a selector against the kind's declared fields. */
  compile(kind: string, selector: Selector): CompiledSelector {
    return compileSelector(selector, this.#stores.get(kind)?.closedFields)
  }

  /** Every public operation starts here: refuse when closed, then commit any due expiries. */
  beginRead(): void {
    this.checkOpen()
    this.#expireDue()
  }

  checkOpen(): void {
    if (this.#closed) throw new Closed('the dataspace is closed')
  }

  /**
   * Applies a staged transaction as one commit: the next revision, the stores and indexes, the
   * history, the expiry queue, then one dispatch to the watchers. Returns the commit's revision
   * (the current revision when there was nothing to change).
   */
  apply(tx: Transaction): number {
    if (this.#dispatching)
      throw new Error('internal: a commit was started while watchers were being notified')
    const changes = tx.changes.filter(
      (change) => change.before !== undefined || change.after !== undefined,
    )
    if (changes.length === 0) return this.#revision
    this.#admit(changes)
    const revision = ++this.#revision
    let nextExpiry = Infinity
    let removals: Map<KindStore, DataspaceRecord[]> | undefined
    for (const change of changes) {
      const store = this.storeFor(change.kind)
      if (!store.resident) {
        ;(this.#backed as BackedReads).applyChange(change, revision)
        continue
      }
      if (change.after === undefined) {
        removals ??= new Map()
        const list = removals.get(store)
        if (list === undefined) removals.set(store, [change.before as DataspaceRecord])
        else list.push(change.before as DataspaceRecord)
      } else {
        store.put(change.after, change.before)
        const at = change.after.expiresAt
        if (at !== undefined && at !== change.before?.expiresAt) {
          this.#expiries.push({ at, kind: change.kind, id: change.id })
          if (at < nextExpiry) nextExpiry = at
        }
      }
    }
    // Removals go last and in bulk: a change's id is unique within a commit, so order is free.
    if (removals !== undefined) for (const [store, list] of removals) store.deleteMany(list)
    this.#memory.records += this.#growth(changes)
    const commit: Commit = { revision, changes }
    this.#history.append(commit)
    this.#pending?.push(commit)
    this.#runtime?.commit({
      revision,
      changes: changes.map((c) => ({ kind: c.kind, id: c.id, after: c.after })),
    })
    if (nextExpiry < this.#timerAt) this.#armTimer(nextExpiry)
    this.#dispatching = true
    try {
      this.#watches.dispatch(commit)
    } finally {
      this.#dispatching = false
    }
    return revision
  }

  /**
   * Refuses a commit that would grow the resident records past the memory budget, before
   * anything is applied (nothing half-applied). Commits that shrink them — retracts, deletes,
   * expiries, exits — always pass. Watch queues are shed first: watchers that do not read must
   * not keep writers out.
   */
  #admit(changes: readonly Change[]): void {
    const growth = this.#growth(changes)
    this.#memory.watches = this.#watches.hub.size
    this.#memory.processes = this.#processes.size
    if (this.#memory.fits(growth)) return
    if (this.#memory.watchQueues.bytes > 0 && !this.#dispatching) {
      this.#watches.shed(this.#memory.overBy(growth))
      if (this.#memory.fits(growth)) return
    }
    this.#memory.refuse(growth)
  }

  /** How many estimated bytes `changes` add to the resident records (negative: free). */
  #growth(changes: readonly Change[]): number {
    let growth = 0
    for (const change of changes) {
      if (this.#stores.get(change.kind)?.resident === false) continue
      if (change.after !== undefined) growth += recordBytes(change.after)
      if (change.before !== undefined) growth -= recordBytes(change.before)
    }
    return growth
  }

  /**
   * Stages and applies ONE commit as `actor` (a pid, or `null` for the system, which may write
   * reserved kinds and set owners), and resolves once it is durable (at once in memory). This is
   * how the facades write: `build` stages operations on the transaction and anything it throws
   * aborts the whole commit.
   */
  async commit<R>(
    actor: string | null,
    build: (tx: Transaction) => R,
    reads: readonly ReadSpec[] = [],
  ): Promise<{ revision: number; result: R }> {
    this.beginRead()
    if (actor !== null) this.checkProcess(actor)
    const applied = await this.withReads(reads, (context) => {
      // The reads took time: the actor must still be alive when its commit is staged.
      if (actor !== null) this.checkProcess(actor)
      const tx = new Transaction(context, actor)
      const result = build(tx)
      const before = this.#revision
      const revision = this.apply(tx)
      return { revision, result, wrote: revision !== before }
    })
    // Only a commit this call made can be refused for its content; an empty one waits.
    const durable = this.durable(applied.revision, applied.wrote)
    if (durable !== undefined) await durable
    return { revision: applied.revision, result: applied.result }
  }

  /**
   * Runs `use` with a transaction context that sees the records `reads` name (non-resident
   * kinds, read from the backend first; see backed-reads.ts), synchronously right after the
   * read; with no reads, at once. `use` must apply whatever it stages before it returns.
   */
  withReads<R>(
    reads: readonly ReadSpec[],
    use: (context: TransactionContext, results: readonly ReadResult[]) => R,
  ): R | Promise<R> {
    if (reads.length === 0) return use(this, [])
    return this.#backedReads().read(reads, (results) =>
      use(this.#viewContext(reads, results), results),
    )
  }

  /** The reads a write of `selector` on `kind` needs first: none for a resident kind. */
  readsFor(kind: string, selector: Selector, need: number): ReadSpec[] {
    return this.#stores.get(kind)?.resident === false ? [this.#readSpec(kind, selector, need)] : []
  }

  /** The non-resident kinds in which `pid` holds records (an exit reads them). */
  nonResidentKindsOf(pid: string): string[] {
    return this.#backed?.kindsOwnedBy(pid) ?? []
  }

  #readSpec(kind: string, selector: Selector, need: number, after?: string): ReadSpec {
    const source = sourceSelector(selector)
    return { kind, selector: this.compile(kind, source), source, after, need }
  }

  /** A context whose non-resident stores are views of what the reads returned. */
  #viewContext(reads: readonly ReadSpec[], results: readonly ReadResult[]): TransactionContext {
    const byKind = new Map<string, DataspaceRecord[]>()
    for (const [i, read] of reads.entries()) {
      const records = (results[i] as ReadResult).records
      const list = byKind.get(read.kind)
      if (list === undefined) byKind.set(read.kind, [...records])
      else list.push(...records)
    }
    const views = new Map<string, KindStore>()
    for (const [kind, records] of byKind) views.set(kind, viewStore(this.storeFor(kind), records))
    for (const [i, read] of reads.entries()) {
      const coveredTo = (results[i] as ReadResult).coveredTo
      if (coveredTo === undefined) continue
      const view = views.get(read.kind) as KindStore
      view.claimBounds ??= new Map()
      const bound = view.claimBounds.get(read.selector.key)
      if (bound === undefined || coveredTo < bound)
        view.claimBounds.set(read.selector.key, coveredTo)
    }
    return {
      store: (kind) => views.get(kind) ?? this.store(kind),
      revision: this.#revision,
      now: () => this.now(),
      maxValueBytes: this.#options.maxValueBytes,
    }
  }

  #backedReads(): BackedReads {
    if (this.#backed === undefined)
      throw new Error('internal: a non-resident kind without a query backend')
    return this.#backed
  }

  #backedBackend(): Backend & Required<Pick<Backend, 'query' | 'explainQuery'>> {
    const backend = this.#runtime?.backend
    if (backend === undefined || !canQuery(backend)) {
      throw new Error('internal: a non-resident kind without a query backend')
    }
    return backend
  }

  /** Throws `ProcessExited` unless `pid` is a live process of this dataspace. */
  checkProcess(pid: string): LocalProcess {
    const proc = this.#processes.get(pid)
    if (proc === undefined || !proc.alive)
      throw new ProcessExited(`process ${pid} is not alive in this dataspace`, pid)
    return proc
  }

  /** Like `apply`, but deferred to a microtask when called from inside a dispatch (a watch closed by its consumer mid-dispatch). */
  applyWhenSafe(tx: Transaction): void {
    if (!this.#dispatching) this.apply(tx)
    else queueMicrotask(() => void (this.#closed || this.apply(tx)))
  }

  /** Commits the retraction of every record whose TTL has run out, in one commit. */
  #expireDue(): void {
    const head = this.#expiries.peek()
    if (head === undefined || head.at > this.now() || this.#dispatching) return
    const tx = new Transaction(this, null)
    for (const due of this.#expiries.popDue(this.now())) {
      const record = this.#stores.get(due.kind)?.records.get(due.id)
      // Lazy deletion: the entry counts only if the record still carries this deadline.
      if (record?.expiresAt === due.at && tx.read(due.kind, due.id) === record)
        tx.remove(record, 'expired')
    }
    this.apply(tx)
  }

  #armTimer(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        this.#timerAt = Infinity
        if (this.#closed) return
        this.#expireDue()
        const next = this.#expiries.peek()
        if (next !== undefined) this.#armTimer(next.at)
      },
      // Node fires a longer delay after 1 ms (with a TimeoutOverflowWarning), which made the
      // loop spin for TTLs over ~24.8 days: wake at the clamp instead, and re-arm from there.
      Math.min(Math.max(0, at - this.now()), MAX_TIMER_MS),
    )
    // Expiry alone must not keep a program alive.
    this.#timer.unref()
  }

  get storesOf(): Iterable<KindStore> {
    return this.#stores.values()
  }

  messageRecordWatchers(
    from: string,
    kind: string,
    id: string,
    message: unknown,
  ): number | Promise<number> {
    const deliver = (record: DataspaceRecord | undefined): number =>
      this.#watches.hub.message(kind, id, record, { type: 'message', from, kind, id, message })
    const store = this.#stores.get(kind)
    if (store?.resident !== false) return deliver(store?.records.get(id))
    const read = this.#readSpec(kind, { id: escapeGlob(id) }, 1)
    return this.#backedReads().read([read], ([result]) => deliver(result?.records[0]))
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

  isAlive(pid: string): boolean {
    return this.#processes.get(pid)?.alive === true
  }

  deliver(pid: string, from: string, message: unknown): boolean {
    return this.#processes.get(pid)?.deliver(from, message) === true
  }

  peek(kind: string, id: string): DataspaceRecord | undefined {
    return this.#stores.get(kind)?.records.get(id)
  }

  /** The records matching a selector, in id order, synchronously (the facades read with this). */
  query(kind: string, selector: Selector = {}): DataspaceRecord[] {
    this.beginRead()
    const store = this.#stores.get(checkKind(kind, true))
    if (store === undefined) return []
    this.#checkResident(kind, 'query')
    const compiled = this.compile(kind, selector)
    return select(store, compiled, plan(store, compiled))
  }

  /** Removes an exited process from the table (its records are already retracted). */
  forgetProcess(proc: LocalProcess): void {
    this.#processes.delete(proc.id)
    this.#droppedMailbox += proc.droppedTotal
  }

  /** Exits every process, ends every watch; later calls fail with `Closed`. */
  async close(): Promise<void> {
    if (this.#closed) return
    // With a durable store, persisted sessions outlive this server: their clients resume them
    // after a restart. Every other process exits, as in memory.
    const kept = new Set(this.#runtime === undefined ? [] : [...this.#sessionPids.values()].flat())
    const exiting = [...this.#processes.values()].filter((proc) => !kept.has(proc.id))
    await Promise.all(exiting.map((proc) => proc.exit('shutdown')))
    this.#closed = true
    await this.#runtime?.close()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    const reason: CloseReason = 'dataspace-closed'
    this.#watches.closeAll(reason)
  }
}

/** The longest delay `setTimeout` takes (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InvalidArgument(`${name} must be a positive integer, got ${value}`)
  return value
}

function checkPaths(name: string, paths: readonly string[]): string[] {
  if (!Array.isArray(paths)) throw new InvalidArgument(`${name} must be an array of data paths`)
  for (const path of paths) {
    if (
      typeof path !== 'string' ||
      path.length === 0 ||
      path.split('.').some((segment) => segment.length === 0)
    ) {
      throw new InvalidArgument(`${name}: ${JSON.stringify(path)} is not a dotted data path`)
    }
  }
  return [...new Set<string>(paths)]
}

/** A backend that can serve non-resident kinds: it answers `query` and `explainQuery`. */
function canQuery(
  backend: Backend,
): backend is Backend & Required<Pick<Backend, 'query' | 'explainQuery'>> {
  return (
    backend.capabilities.query &&
    typeof backend.query === 'function' &&
    typeof backend.explainQuery === 'function'
  )
}

/** Only the selector part of list or watch options: what a backend query is given. */
function sourceSelector(options: Selector): Selector {
  const { id, fields, labels, owner } = options
  return {
    ...(id === undefined ? {} : { id }),
    ...(fields === undefined ? {} : { fields }),
    ...(labels === undefined ? {} : { labels }),
    ...(owner === undefined ? {} : { owner }),
  }
}

function checkProcessName(name: unknown): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new InvalidArgument('process name must be a non-empty string of at most 200 characters')
  }
  // Names are stored with persisted sessions.
  checkText('process name', name)
}

/** Every pid a loaded state mentions: record owners, sessions and their children. */
function* storedPids(state: LoadedState): Iterable<string> {
  for (const record of state.records) if (record.owner !== null) yield record.owner
  for (const owned of state.owned ?? []) yield owned.owner
  for (const session of state.sessions) {
    yield session.pid
    for (const child of session.children) yield child.pid
  }
}
