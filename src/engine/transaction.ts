import { Conflict, InvalidArgument, NotFound, NotOwner } from '../errors/index.js'
import { fieldValues, validateLabels } from '../query/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { Change } from './history.js'
import type { KindStore } from './kind-store.js'
import { plan } from './query-planner.js'
import { validateSync } from '../model/schema.js'
import type { Condition, DataspaceRecord, Labels, OrderBy, RetractReason } from '../model/types.js'
import {
  checkRevision,
  checkText,
  checkTtl,
  DEFAULT_MAX_VALUE_BYTES,
  freezeJson,
} from '../model/validate.js'

type Rec = DataspaceRecord

/** What a transaction needs from the engine: the stores, and the revision it will commit as. */
export interface TransactionContext {
  store(kind: string): KindStore | undefined
  readonly revision: number
  now(): number
  /** The bound on one value's JSON encoding (`DataspaceOptions.maxValueBytes`). */
  readonly maxValueBytes?: number
}

export interface AssertInput {
  readonly kind: string
  readonly id: string
  /** Already validated and frozen. */
  readonly data: unknown
  readonly labels?: Labels | undefined
  readonly ttl?: number | undefined
  readonly ifRevision?: number | undefined
  /** `null` makes the record ownerless; any other owner only for the system actor (facades). */
  readonly owner?: string | null | undefined
}

const EMPTY_LABELS: Labels = Object.freeze({})

/**
 * Stages the operations of one commit against the current state plus what earlier operations
 * of the same commit did. Nothing touches the stores until the engine applies `changes`, so a
 * failing operation leaves nothing half-applied. `actor` is the pid acting (`null` = the system).
 */
export class Transaction {
  readonly #context: TransactionContext
  readonly #actor: string | null
  readonly #revision: number
  /** kind → id → index in `changes` of that id's (net) change: the staged overlay. */
  readonly #staged = new Map<string, Map<string, number>>()
  readonly changes: Change[] = []
  /**
   * The stored sessions whose end this commit is (a cluster reaper's owner-exit commit): it is
   * committed even when it changes nothing, and the store deletes those sessions with it
   * (`StoredCommit.ends`).
   */
  ends: readonly string[] | undefined

  constructor(context: TransactionContext, actor: string | null) {
    this.#context = context
    this.#actor = actor
    this.#revision = context.revision + 1
  }

  /** The pid acting, or `null` for the system. */
  get actor(): string | null {
    return this.#actor
  }

  get #maxBytes(): number {
    return this.#context.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  }

  /** The record as this transaction sees it. */
  read(kind: string, id: string): Rec | undefined {
    const index = this.#staged.get(kind)?.get(id)
    if (index !== undefined) return (this.changes[index] as Change).after
    return this.#context.store(kind)?.records.get(id)
  }

  check(condition: Condition, index: number): void {
    const current = this.read(condition.kind, String(condition.id))
    const where = `condition ${index} (${condition.kind}/${condition.id})`
    const revision = current?.revision ?? 0
    if (
      condition.revision !== undefined &&
      revision !== checkRevision('condition revision', condition.revision)
    ) {
      throw new Conflict(
        `${where}: revision is ${revision}, expected ${condition.revision}`,
        revision,
      )
    }
    if (condition.exists !== undefined && condition.exists !== (current !== undefined)) {
      throw new Conflict(
        `${where}: record ${current === undefined ? 'does not exist' : 'exists'}`,
        revision,
      )
    }
    if (condition.field !== undefined) {
      const actual = current === undefined ? undefined : valueAt(current.data, condition.field)
      if ('equals' in condition && !jsonEqual(actual, condition.equals)) {
        throw new Conflict(
          `${where}: ${condition.field} is ${JSON.stringify(actual)}, expected ${JSON.stringify(condition.equals)}`,
          revision,
        )
      }
      if ('notEquals' in condition && jsonEqual(actual, condition.notEquals)) {
        throw new Conflict(`${where}: ${condition.field} is ${JSON.stringify(actual)}`, revision)
      }
    } else if ('equals' in condition || 'notEquals' in condition) {
      throw new InvalidArgument(`${where}: equals/notEquals need a field`)
    }
  }

  assert(input: AssertInput): Rec {
    const { kind, id } = input
    if (input.ttl !== undefined && this.#context.store(kind)?.resident === false) {
      throw new InvalidArgument(
        `${kind} is a non-resident kind: its records cannot have a ttl (give them an owner, or use a resident kind)`,
      )
    }
    checkText('id', id)
    // Every stored value passes the one value rule here, whatever path it came by (facades
    // included); data checked before costs a lookup (json-value.ts).
    freezeJson(input.data, 'data', this.#maxBytes)
    const current = this.read(kind, id)
    this.#checkRevision(kind, id, current, input.ifRevision)
    const system = this.#actor === null
    if (
      !system &&
      current !== undefined &&
      current.owner !== null &&
      current.owner !== this.#actor
    ) {
      throw new NotOwner(
        `${kind}/${id} is owned by ${current.owner}; only its owner may overwrite it`,
        current.owner,
      )
    }
    let labels = EMPTY_LABELS
    if (input.labels !== undefined) {
      const problem = validateLabels(input.labels)
      if (problem !== undefined) throw new InvalidArgument(`labels: ${problem}`)
      labels = Object.freeze({ ...input.labels })
    }
    const expiresAt =
      input.ttl === undefined ? undefined : this.#context.now() + checkTtl('ttl', input.ttl)
    // An ownerless record stays ownerless: writing it does not hand it to the writer.
    const owner =
      input.owner !== undefined && (system || input.owner === null)
        ? input.owner
        : current !== undefined
          ? current.owner
          : this.#actor
    const record = this.#record(
      kind,
      id,
      input.data,
      labels,
      owner,
      current?.createdRevision,
      expiresAt,
    )
    this.#stage(record, current, undefined)
    return record
  }

  retract(
    kind: string,
    id: string,
    ifRevision: number | undefined,
    reason: RetractReason = 'retract',
  ): Rec {
    const current = this.read(kind, id)
    if (current === undefined) {
      if (ifRevision !== undefined && ifRevision !== 0)
        this.#checkRevision(kind, id, current, ifRevision)
      throw new NotFound(`${kind}/${id} does not exist`)
    }
    this.#checkRevision(kind, id, current, ifRevision)
    if (this.#actor !== null && current.owner !== null && current.owner !== this.#actor) {
      throw new NotOwner(
        `${kind}/${id} is owned by ${current.owner}; only its owner may retract it`,
        current.owner,
      )
    }
    this.#stageRemoval(current, reason)
    return current
  }

  /**
   * Puts a key back as the backend stores it (`target`; `undefined` when it is not stored),
   * undoing a refused commit. `target` keeps its revision: it is the version the store holds.
   */
  restore(kind: string, id: string, current: Rec | undefined, target: Rec | undefined): void {
    this.#pushChange(kind, id, current, target, target === undefined ? 'refused' : undefined)
  }

  /** Removes a record regardless of owner (owner exit, expiry). */
  remove(record: Rec, reason: RetractReason): void {
    this.#stageRemoval(record, reason)
  }

  /**
   * Atomically picks the first record matching `selector` (by `orderBy`) and patches it. The
   * selector is evaluated against this transaction's view, so two claims can never pick the same
   * record: the second sees the first's patch.
   */
  claim(
    kind: string,
    selector: CompiledSelector,
    patch: unknown,
    ownerSelf: boolean,
    orderBy: OrderBy | undefined,
  ): Rec | undefined {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new InvalidArgument('claim patch must be an object (it is shallow-merged into data)')
    }
    const chosen = this.#pickForClaim(kind, selector, orderBy)
    if (chosen === undefined) return undefined
    if (chosen.data === null || typeof chosen.data !== 'object' || Array.isArray(chosen.data)) {
      throw new InvalidArgument(`cannot patch ${kind}/${chosen.id}: its data is not an object`)
    }
    const store = this.#context.store(kind)
    let data: unknown = {
      ...(chosen.data as Record<string, unknown>),
      ...(patch as Record<string, unknown>),
    }
    if (store?.schema !== undefined) data = validateSync(kind, store.schema, data)
    freezeJson(data, 'data', this.#maxBytes)
    const owner = ownerSelf ? this.#actor : chosen.owner
    const record = this.#record(
      kind,
      chosen.id,
      data,
      chosen.labels,
      owner,
      chosen.createdRevision,
      chosen.expiresAt,
    )
    this.#stage(record, chosen, undefined)
    return record
  }

  /**
   * The winning match: one pass over the chosen index's candidates keeping the best by
   * `orderBy` — no sort and no list of matches, so a claim costs one walk of its bucket. In id
   * order over an ordered index, the first match wins and the walk stops there.
   */
  #pickForClaim(
    kind: string,
    selector: CompiledSelector,
    orderBy: OrderBy | undefined,
  ): Rec | undefined {
    const store = this.#context.store(kind)
    const staged = this.#staged.get(kind)
    const compare = comparator(orderBy)
    let best: Rec | undefined
    const consider = (record: Rec): void => {
      if (selector.matches(record) && (best === undefined || compare(record, best) < 0))
        best = record
    }
    // A view of a non-resident kind covers ids up to a bound: past it, a match may be unread.
    const bound = store?.claimBounds?.get(selector.key)
    if (store !== undefined) {
      const chosen = plan(store, selector)
      const firstWins = chosen.ordered && (orderBy === undefined || orderBy === 'id')
      for (const record of chosen.candidates()) {
        if (staged?.has(record.id) === true) continue // its staged version is considered below
        if (bound !== undefined && record.id > bound) continue
        consider(record)
        if (firstWins && best !== undefined) break
      }
    }
    if (staged !== undefined) {
      for (const index of staged.values()) {
        const record = (this.changes[index] as Change).after
        if (record !== undefined && (bound === undefined || record.id <= bound)) consider(record)
      }
    }
    return best
  }

  #checkRevision(
    kind: string,
    id: string,
    current: Rec | undefined,
    ifRevision: number | undefined,
  ): void {
    if (ifRevision === undefined) return
    const actual = current?.revision ?? 0
    if (actual !== checkRevision('ifRevision', ifRevision)) {
      const state = current === undefined ? 'does not exist' : `is at revision ${actual}`
      throw new Conflict(
        `${kind}/${id} ${state}, expected ${ifRevision === 0 ? 'it not to exist' : `revision ${ifRevision}`}`,
        actual,
      )
    }
  }

  #record(
    kind: string,
    id: string,
    data: unknown,
    labels: Labels,
    owner: string | null,
    created: number | undefined,
    expiresAt: number | undefined,
  ): Rec {
    const revision = this.#revision
    const record: Rec =
      expiresAt === undefined
        ? { kind, id, data, labels, owner, revision, createdRevision: created ?? revision }
        : {
            kind,
            id,
            data,
            labels,
            owner,
            revision,
            createdRevision: created ?? revision,
            expiresAt,
          }
    return Object.freeze(record)
  }

  #stage(after: Rec, current: Rec | undefined, reason: RetractReason | undefined): void {
    this.#pushChange(after.kind, after.id, current, after, reason)
  }

  #stageRemoval(current: Rec, reason: RetractReason): void {
    this.#pushChange(current.kind, current.id, current, undefined, reason)
  }

  /** Several ops on one id in one commit collapse into one change: watchers see the net effect. */
  #pushChange(
    kind: string,
    id: string,
    current: Rec | undefined,
    after: Rec | undefined,
    reason: RetractReason | undefined,
  ): void {
    let staged = this.#staged.get(kind)
    if (staged === undefined) this.#staged.set(kind, (staged = new Map<string, number>()))
    const index = staged.get(id)
    if (index !== undefined) {
      const first = this.changes[index] as Change
      this.changes[index] = { kind, id, before: first.before, after, reason }
      return
    }
    staged.set(id, this.changes.length)
    this.changes.push({ kind, id, before: current, after, reason })
  }
}

/** Reads a dotted data path (for conditions); arrays are not traversed. */
function valueAt(data: unknown, path: string): unknown {
  let value = data
  for (const segment of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const aKeys = Object.keys(a)
  const bKeys = Object.keys(b)
  if (aKeys.length !== bKeys.length) return false
  return aKeys.every((key) =>
    jsonEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
  )
}

/** Orders claim candidates: `id`, `revision`, `createdRevision` or a data path; `-` prefix descends. */
function comparator(orderBy: OrderBy | undefined): (a: Rec, b: Rec) => number {
  const spec = orderBy ?? 'id'
  const descending = spec.startsWith('-')
  const key = descending ? spec.slice(1) : spec
  const sign = descending ? -1 : 1
  const read: (record: Rec) => string | number =
    key === 'id'
      ? (record) => record.id
      : key === 'revision'
        ? (record) => record.revision
        : key === 'createdRevision'
          ? (record) => record.createdRevision
          : (record) => {
              const value = valueAt(record.data, key)
              return typeof value === 'number'
                ? value
                : (fieldValues(record.data, key.split('.'))[0] ?? '')
            }
  return (a, b) => {
    const x = read(a)
    const y = read(b)
    if (x < y) return -sign
    if (x > y) return sign
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0 // ties go to the lower id, always ascending
  }
}
