import { Conflict, InvalidArgument } from '../errors/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { KindStore } from './kind-store.js'
import type { LocalProcess, ProcessHost } from './process.js'
import { validate } from './schema.js'
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
} from './types.js'
import { checkId, checkKind, freezeJson } from './validate.js'

interface Prepared {
  readonly op: Op
  readonly id?: string
  data?: unknown
}

/** The part of the engine that process operations need (kept narrow to avoid an import cycle). */
export interface EngineCore extends TransactionContext {
  beginRead(): void
  compile(kind: string, selector: Selector): CompiledSelector
  apply(tx: Transaction): number
  /** Settles when `revision` is durable; `undefined` when it already is (or nothing persists). */
  durable(revision: number): Promise<void> | undefined
  processById(pid: string): LocalProcess | undefined
  forgetProcess(proc: LocalProcess): void
  messageRecordWatchers(from: string, kind: string, id: string, message: unknown): number
  /** Resolves `{ group }` / `{ name }` targets to pids; facades register how. */
  resolveTarget(target: SendTarget): readonly string[]
  readonly storesOf: Iterable<KindStore>
}

/**
 * The operations of in-process processes: validate outside the commit (schemas may be async),
 * then stage and apply synchronously, re-checking that the process is still alive at that moment.
 */
export class ProcessOps implements ProcessHost {
  readonly #engine: EngineCore

  constructor(engine: EngineCore) {
    this.#engine = engine
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
    proc.checkAlive()
    const tx = new Transaction(this.#engine, proc.id)
    const record = tx.assert({
      kind,
      id: key,
      data: validated,
      labels: options.labels,
      ttl: options.ttl,
      ifRevision: options.ifRevision,
      owner: ownerOption(options.owner),
    })
    const durable = this.#engine.durable(this.#engine.apply(tx))
    if (durable !== undefined) await durable
    return record
  }

  async retract(
    proc: LocalProcess,
    kind: string,
    id: string | number,
    options: RetractOptions,
  ): Promise<DataspaceRecord> {
    this.#begin(proc, options.signal)
    checkKind(kind)
    const tx = new Transaction(this.#engine, proc.id)
    const record = tx.retract(kind, checkId(id), options.ifRevision)
    const durable = this.#engine.durable(this.#engine.apply(tx))
    if (durable !== undefined) await durable
    return record
  }

  async claim(
    proc: LocalProcess,
    kind: string,
    options: ClaimOptions,
  ): Promise<DataspaceRecord | undefined> {
    this.#begin(proc, options.signal)
    checkKind(kind)
    const tx = new Transaction(this.#engine, proc.id)
    const { patch, self } = claimPatch(options)
    const record = tx.claim(
      kind,
      this.#engine.compile(kind, claimSelector(options)),
      patch,
      self,
      options.orderBy,
    )
    const durable = this.#engine.durable(this.#engine.apply(tx))
    if (durable !== undefined) await durable
    return record
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
    proc.checkAlive()
    const tx = new Transaction(this.#engine, proc.id)
    conditions.forEach((condition, index) => {
      checkKind(condition.kind, true)
      tx.check(condition, index)
    })
    const results = prepared.map(({ op, data, id }, index) => {
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
    const revision = this.#engine.apply(tx)
    const durable = this.#engine.durable(revision)
    if (durable !== undefined) await durable
    return { revision, results }
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
          `op ${index}: "op" must be assert, retract or claim, got ${JSON.stringify((op as { op?: unknown }).op)}`,
        )
    }
  }

  /** Validated, frozen data — synchronously unless the kind's schema is async. */
  #validate(kind: string, data: unknown): unknown {
    const schema = this.#engine.store(kind)?.schema
    const value = schema === undefined ? data : validate(kind, schema, data)
    return value instanceof Promise
      ? (value as Promise<unknown>).then((settled) => freezeJson(settled))
      : freezeJson(value)
  }

  async send(proc: LocalProcess, target: SendTarget, message: unknown): Promise<number> {
    this.#begin(proc, undefined)
    if (typeof target === 'string')
      return this.#engine.processById(target)?.deliver(proc.id, message) === true ? 1 : 0
    if (target !== null && typeof target === 'object' && 'kind' in target) {
      checkKind(target.kind, true)
      return this.#engine.messageRecordWatchers(proc.id, target.kind, checkId(target.id), message)
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

  /** Retracts everything the process owns in ONE commit (reason `owner-exit`), then notifies. */
  exit(proc: LocalProcess, reason: ExitReason): Promise<void> {
    const tx = new Transaction(this.#engine, null)
    for (const store of this.#engine.storesOf) {
      const owned = store.byOwner.get(proc.id)
      if (owned === undefined) continue
      for (const record of owned.values()) tx.remove(record, 'owner-exit')
    }
    const revision = this.#engine.apply(tx)
    this.#engine.forgetProcess(proc)
    proc.finishExit(reason)
    return this.#engine.durable(revision) ?? Promise.resolve()
  }

  #begin(proc: LocalProcess, signal: AbortSignal | undefined): void {
    this.#engine.beginRead()
    signal?.throwIfAborted()
    proc.checkAlive()
  }
}

/** A process may only ask for no owner (`null`); naming another owner is not its to do. */
function ownerOption(owner: unknown): null | undefined {
  if (owner === undefined || owner === null) return owner
  throw new InvalidArgument(
    `assert owner may only be null (an ownerless record), got ${JSON.stringify(owner)}`,
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

/** Splits `owner: 'self'` (beside the patch, or inside it as DESIGN words it) from the data patch. */
function claimPatch(options: Pick<ClaimOptions, 'patch' | 'owner'>): {
  patch: unknown
  self: boolean
} {
  const { owner } = options
  if (owner !== undefined && owner !== 'self') {
    throw new InvalidArgument(`claim owner must be 'self' or absent, got ${JSON.stringify(owner)}`)
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
