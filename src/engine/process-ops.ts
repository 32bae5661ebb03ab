import { Conflict, InvalidArgument } from '../errors/index.js'
import { escapeGlob } from '../query/index.js'
import type { ReadResult, ReadSpec } from './backed-reads.js'
import type { CommitPath } from './commit.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { KindStore } from './kind-store.js'
import type { LocalProcess, ProcessHost } from './process.js'
import type { StoredSession } from './ports/backend.js'
import { validate } from '../model/schema.js'
import { Transaction } from './transaction.js'
import type { TransactionContext } from './transaction.js'
import type {
  AssertOptions,
  ClaimOptions,
  Condition,
  DataspaceRecord,
  ExitReason,
  Op,
  RetractOptions,
  Selector,
  SendTarget,
  TransactRequest,
  TransactResult,
} from '../model/types.js'
import {
  checkId,
  checkKind,
  checkText,
  DEFAULT_MAX_VALUE_BYTES,
  describe,
  freezeJson,
} from '../model/validate.js'

interface Prepared {
  readonly op: Op
  readonly id?: string
  data?: unknown
}

/** The part of the engine that process operations need (kept narrow to avoid an import cycle). */
export interface EngineCore extends TransactionContext {
  beginRead(): void
  compile(kind: string, selector: Selector): CompiledSelector
  /** Applies a staged system transaction as one commit (commit.ts, steps 3–5). */
  applyStaged(tx: Transaction): number
  /** Runs `use` against a context that sees `reads` (non-resident records), right after them. */
  withReads<R>(
    reads: readonly ReadSpec[],
    use: (context: TransactionContext, results: readonly ReadResult[]) => R,
  ): R | Promise<R>
  /** The reads a write of `selector` on `kind` needs first (none for a resident kind). */
  readsFor(kind: string, selector: Selector, need: number): ReadSpec[]
  /** The non-resident kinds in which `pid` holds records. */
  nonResidentKindsOf(pid: string): string[]
  /** Retries a read that must happen (an exit's) until it succeeds or the dataspace closes. */
  retryRead<R>(read: () => Promise<R>): Promise<R>
  /** Settles when `revision` is durable; `undefined` when it already is (or nothing persists). */
  durable(revision: number): Promise<void> | undefined
  processById(pid: string): LocalProcess | undefined
  forgetProcess(proc: LocalProcess): void
  messageRecordWatchers(
    from: string,
    kind: string,
    id: string,
    message: unknown,
  ): number | Promise<number>
  /** Resolves `{ group }` / `{ name }` targets to pids; facades register how. */
  resolveTarget(target: SendTarget): readonly string[]
  readonly storesOf: Iterable<KindStore>
}

/**
 * The operations of in-process processes: validate outside the commit (schemas may be async),
 * then commit (commit.ts) with the process itself as the actor: the commit path checks that it
 * is still alive when the commit is staged, with no lookup by pid.
 */
export class ProcessOps implements ProcessHost {
  readonly #engine: EngineCore
  readonly #commits: CommitPath

  constructor(engine: EngineCore, commits: CommitPath) {
    this.#engine = engine
    this.#commits = commits
  }

  async assert(
    proc: LocalProcess,
    kind: string,
    id: string | number,
    data: unknown,
    options: AssertOptions,
  ): Promise<DataspaceRecord> {
    this.#begin(proc, options.signal)
    checkKind(kind)
    const key = checkId(id)
    const pending = this.#validate(kind, data)
    const validated: unknown =
      pending instanceof Promise ? await (pending as Promise<unknown>) : pending
    const owner = ownerOption(options.owner)
    const { result } = await this.#commits.commit(
      proc,
      (tx) =>
        tx.assert({
          kind,
          id: key,
          data: validated,
          labels: options.labels,
          ttl: options.ttl,
          ifRevision: options.ifRevision,
          owner,
        }),
      this.#byId(kind, key),
    )
    return result
  }

  /** The read an operation on one id needs (none for a resident kind). */
  #byId(kind: string, id: string): ReadSpec[] {
    return this.#engine.readsFor(kind, { id: escapeGlob(id) }, 1)
  }

  async retract(
    proc: LocalProcess,
    kind: string,
    id: string | number,
    options: RetractOptions,
  ): Promise<DataspaceRecord> {
    this.#begin(proc, options.signal)
    checkKind(kind)
    const key = checkId(id)
    const { result } = await this.#commits.commit(
      proc,
      (tx) => tx.retract(kind, key, options.ifRevision),
      this.#byId(kind, key),
    )
    return result
  }

  async claim(
    proc: LocalProcess,
    kind: string,
    options: ClaimOptions,
  ): Promise<DataspaceRecord | undefined> {
    this.#begin(proc, options.signal)
    checkKind(kind)
    const { patch, self } = claimPatch(options)
    freezeJson(patch, 'patch', this.#maxBytes)
    const selector = claimSelector(options)
    const compiled = this.#engine.compile(kind, selector)
    const { result } = await this.#commits.commit(
      proc,
      (tx) => tx.claim(kind, compiled, patch, self, options.orderBy),
      this.#engine.readsFor(kind, selector, idOrder(options.orderBy) ? 1 : Infinity),
    )
    return result
  }

  async transact(proc: LocalProcess, request: TransactRequest): Promise<TransactResult> {
    if (request === null || typeof request !== 'object' || !Array.isArray(request.then)) {
      throw new InvalidArgument('transact needs { if?: Condition[], then: Op[] }')
    }
    if (request.if !== undefined && !Array.isArray(request.if)) {
      throw new InvalidArgument('transact: "if" must be an array of conditions')
    }
    this.#begin(proc, request.signal)
    const conditions: readonly Condition[] = request.if ?? []
    // Validate every op's data first: an async schema must not run inside the commit.
    const prepared: Prepared[] = []
    const ops: readonly Op[] = request.then
    for (const [index, op] of ops.entries()) {
      const item = this.#prepare(op, index)
      // Await only async validators: a thousand-op batch should not cost a thousand turns.
      if (item.data instanceof Promise) item.data = await item.data
      prepared.push(item)
    }
    conditions.forEach((condition, index) => this.#checkCondition(condition, index))
    const { revision, result: results } = await this.#commits.commit(
      proc,
      (tx) => this.#stageTransact(tx, conditions, prepared),
      this.#transactReads(conditions, prepared),
    )
    return { revision, results }
  }

  /**
   * What a transaction on non-resident kinds reads first: each id it names, and for each claim
   * enough matches that every op of the transaction on that kind could take one away.
   */
  #transactReads(conditions: readonly Condition[], prepared: readonly Prepared[]): ReadSpec[] {
    const perKind = new Map<string, number>()
    for (const { kind } of [...conditions, ...prepared.map((item) => item.op)]) {
      perKind.set(kind, (perKind.get(kind) ?? 0) + 1)
    }
    const reads: ReadSpec[] = []
    const seen = new Set<string>()
    const byId = (kind: string, id: string): void => {
      const key = JSON.stringify([kind, id])
      if (seen.has(key)) return
      seen.add(key)
      reads.push(...this.#byId(kind, id))
    }
    for (const condition of conditions) byId(condition.kind, checkId(condition.id))
    for (const { op, id } of prepared) {
      if (op.op !== 'claim') byId(op.kind, id as string)
      else {
        const need = idOrder(op.orderBy) ? (perKind.get(op.kind) ?? 1) : Infinity
        reads.push(...this.#engine.readsFor(op.kind, claimSelector(op), need))
      }
    }
    return reads
  }

  #stageTransact(
    tx: Transaction,
    conditions: readonly Condition[],
    prepared: readonly Prepared[],
  ): (DataspaceRecord | undefined)[] {
    conditions.forEach((condition, index) => tx.check(condition, index))
    return prepared.map(({ op, data, id }, index) => {
      switch (op.op) {
        case 'assert':
          return tx.assert({
            kind: op.kind,
            id: id as string,
            data,
            labels: op.labels,
            ttl: op.ttl,
            ifRevision: op.ifRevision,
            owner: ownerOption(op.owner),
          })
        case 'retract':
          return tx.retract(op.kind, id as string, op.ifRevision)
        case 'claim': {
          const { patch, self } = claimPatch(op)
          const claimed = tx.claim(
            op.kind,
            this.#engine.compile(op.kind, claimSelector(op)),
            patch,
            self,
            op.orderBy,
          )
          if (claimed === undefined && op.optional !== true) {
            throw new Conflict(
              `op ${index}: claim on ${op.kind} matched no record (set optional: true to allow that)`,
            )
          }
          return claimed
        }
        default:
          op satisfies never
          throw new InvalidArgument(`op ${index}: unknown op`)
      }
    })
  }

  /** A condition names a record and compares values: the value rule holds for them too. */
  #checkCondition(condition: Condition, index: number): void {
    if (condition === null || typeof condition !== 'object')
      throw new InvalidArgument(`condition ${index} is not an object, got ${describe(condition)}`)
    checkKind(condition.kind, true)
    checkId(condition.id)
    if (condition.field !== undefined) {
      if (typeof condition.field !== 'string')
        throw new InvalidArgument(`condition ${index}: field must be a string data path`)
      checkText(`condition ${index} field`, condition.field)
    }
    for (const key of ['equals', 'notEquals'] as const) {
      if (key in condition) freezeJson(condition[key], `condition ${index} ${key}`, this.#maxBytes)
    }
  }

  get #maxBytes(): number {
    return this.#engine.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  }

  /** Checks an op; an assert's data comes back validated and frozen, or as a promise of that. */
  #prepare(op: Op, index: number): Prepared {
    if (op === null || typeof op !== 'object')
      throw new InvalidArgument(`op ${index} is not an object`)
    checkKind(op.kind)
    switch (op.op) {
      case 'assert':
        return { op, id: checkId(op.id), data: this.#validate(op.kind, op.data) }
      case 'retract':
        return { op, id: checkId(op.id) }
      case 'claim':
        return { op }
      default:
        op satisfies never
        throw new InvalidArgument(
          `op ${index}: "op" must be assert, retract or claim, got ${describe((op as { op?: unknown }).op)}`,
        )
    }
  }

  /** Validated, frozen data — synchronously unless the kind's schema is async. */
  #validate(kind: string, data: unknown): unknown {
    const schema = this.#engine.store(kind)?.schema
    const value = schema === undefined ? data : validate(kind, schema, data)
    return value instanceof Promise
      ? (value as Promise<unknown>).then((settled) => freezeJson(settled, 'data', this.#maxBytes))
      : freezeJson(value, 'data', this.#maxBytes)
  }

  async send(proc: LocalProcess, target: SendTarget, message: unknown): Promise<number> {
    this.#begin(proc, undefined)
    // Checked before delivery: every receiver shares it, and a remote one must be able to encode it.
    freezeJson(message, 'message', this.#maxBytes)
    if (typeof target === 'string')
      return this.#engine.processById(target)?.deliver(proc.id, message) === true ? 1 : 0
    if (target !== null && typeof target === 'object' && 'kind' in target) {
      checkKind(target.kind, true)
      return await this.#engine.messageRecordWatchers(
        proc.id,
        target.kind,
        checkId(target.id),
        message,
      )
    }
    let delivered = 0
    for (const pid of this.#engine.resolveTarget(target)) {
      if (this.#engine.processById(pid)?.deliver(proc.id, message) === true) delivered++
    }
    return delivered
  }

  monitor(proc: LocalProcess, pid: string): Promise<ExitReason> {
    proc.checkAlive()
    const target = this.#engine.processById(pid)
    if (target === undefined || !target.alive) return Promise.resolve('noproc')
    return new Promise((resolve) => target.monitors.add(resolve))
  }

  /**
   * Retracts everything the process owns in ONE commit (reason `owner-exit`), then notifies.
   * What it holds in non-resident kinds is read from the backend first (retried until it can
   * be: an owner's records must not outlive it).
   */
  exit(proc: LocalProcess, reason: ExitReason): Promise<void> {
    const exit = this.#retractOwned([proc.id], undefined, () => {
      this.#engine.forgetProcess(proc)
      proc.finishExit(reason)
      if (this.#commits.clustered) this.unwrittenExits.add(proc.id)
    })
    if (!this.#commits.clustered) return exit
    // Settled: no later rewind needs it. Dropped (another node wrote first): the rewind runs
    // before this (in the same step as the drop) and takes it.
    return exit.finally(() => {
      this.unwrittenExits.delete(proc.id)
    })
  }

  /**
   * A cluster node's processes that exited here and whose exit's commit is not yet durable: if
   * the node's unwritten commits are dropped (another node wrote first), what the store still
   * holds for them is retracted again (`Recovery.rewind`). Only those: a pid of this node that
   * is not alive here may be a session another node took over, alive there.
   */
  readonly unwrittenExits = new Set<string>()

  /**
   * A cluster node's reaper (docs/cluster.md, "Sessions in the store"): the stored session
   * `session`'s lease ran out, so everything its processes own is retracted in ONE commit
   * (reason `owner-exit`) that also ends the session in the store (`Transaction.ends`: the store
   * refuses it if the lease is live again). A process of it still alive on this node (this
   * node could not renew its lease in time) is left to the renewal that finds it lost
   * (session-leases.ts): until then the store refuses its writes.
   */
  reap(session: StoredSession): Promise<void> {
    const pids = [session.pid, ...session.children.map((child) => child.pid)]
    // Every non-resident kind is read: this node's per-owner counts know only what it loaded
    // and what it wrote itself, not what another node's processes wrote since.
    const kinds = [...this.#engine.storesOf]
      .filter((store) => !store.resident)
      .map((store) => store.kind)
    return this.#retractOwned(pids, [session.id], () => {}, kinds)
  }

  /**
   * One commit that retracts what `pids` own, resident and not (in the non-resident kinds
   * `nonResident`, else those the per-owner counts name), then `after` (in the same synchronous
   * step, so nothing sees the processes alive without their records); resolves when it is
   * durable. A cluster node stages it in its next turn, against the state then.
   */
  #retractOwned(
    pids: readonly string[],
    ends: readonly string[] | undefined,
    after: () => void,
    nonResident?: readonly string[],
  ): Promise<void> {
    const engine = this.#engine
    const finish = (context: TransactionContext, results: readonly ReadResult[]): number => {
      const tx = new Transaction(context, null)
      tx.ends = ends
      for (const pid of pids) {
        for (const store of engine.storesOf) {
          const owned = store.byOwner.get(pid)
          if (owned === undefined) continue
          for (const record of owned.values()) tx.remove(record, 'owner-exit')
        }
      }
      for (const result of results) {
        for (const record of result.records) tx.remove(record, 'owner-exit')
      }
      const revision = engine.applyStaged(tx)
      after()
      return revision
    }
    const reads = pids.flatMap((pid) =>
      (nonResident ?? engine.nonResidentKindsOf(pid)).flatMap((kind) =>
        engine.readsFor(kind, { owner: pid }, Infinity),
      ),
    )
    if (this.#commits.clustered) {
      // A cluster node writes in turns: the commit is staged in the next one, against the
      // state then, and waits for it as long as it takes (records must not outlive owners).
      return Promise.resolve(
        this.#commits.inTurn(
          () =>
            reads.length === 0
              ? finish(engine, [])
              : engine.retryRead(async () => engine.withReads(reads, finish)),
          true,
        ),
      ).then((revision) => engine.durable(revision))
    }
    if (reads.length === 0) {
      return engine.durable(finish(engine, [])) ?? Promise.resolve()
    }
    return engine
      .retryRead(async () => engine.withReads(reads, finish))
      .then((revision) => engine.durable(revision))
  }

  #begin(proc: LocalProcess, signal: AbortSignal | undefined): void {
    this.#engine.beginRead()
    signal?.throwIfAborted()
    proc.checkAlive()
  }
}

/** True when a claim takes the lowest id (then its read can stop at the first match). */
function idOrder(orderBy: string | undefined): boolean {
  return orderBy === undefined || orderBy === 'id'
}

/** A process may only ask for no owner (`null`); naming another owner is not its to do. */
function ownerOption(owner: unknown): null | undefined {
  if (owner === undefined || owner === null) return owner
  throw new InvalidArgument(
    `assert owner may only be null (an ownerless record), got ${describe(owner)}`,
  )
}

/** The selector part of claim options (`owner` there means the new owner, not a filter). */
function claimSelector(options: Omit<ClaimOptions, 'patch'>): Selector {
  const { id, fields, labels } = options
  return {
    ...(id === undefined ? {} : { id }),
    ...(fields === undefined ? {} : { fields }),
    ...(labels === undefined ? {} : { labels }),
  }
}

/** Splits `owner: 'self'` (beside the patch, or inside it as docs/semantics.md words it) from the data patch. */
function claimPatch(options: Pick<ClaimOptions, 'patch' | 'owner'>): {
  patch: unknown
  self: boolean
} {
  const { owner } = options
  if (owner !== undefined && owner !== 'self') {
    throw new InvalidArgument(`claim owner must be 'self' or absent, got ${describe(owner)}`)
  }
  const patch: unknown = options.patch
  if (
    patch !== null &&
    typeof patch === 'object' &&
    !Array.isArray(patch) &&
    (patch as Record<string, unknown>)['owner'] === 'self'
  ) {
    const { owner: _self, ...data } = patch as Record<string, unknown>
    return { patch: data, self: true }
  }
  return { patch, self: owner === 'self' }
}
