import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Conflict, DataspaceError, NotFound, NotOwner, ProcessExited } from '../../src/index.js'
import type { DataspaceRecord, Labels, Selector, Watch, WatchEvent } from '../../src/index.js'

/**
 * Helpers of the engine model test (`model.test.ts`): the reference model, the commands and
 * their arbitraries, outcome checks, and watch draining.
 *
 * The reference model is a plain map of records and a revision counter, written to be obviously
 * right rather than fast. Every write is staged in a {@link Staging} (a copy of the map) and
 * committed only if it succeeds and changes something: the engine's contract of one commit, one
 * revision, all-or-nothing. Where several errors apply at once (a wrong `ifRevision` on a record
 * owned by another process), the model accepts any of them: the contract does not order checks.
 */

/** The first kind declares `group` as an index; the second is schemaless and undeclared. */
export const KINDS = ['model.grouped', 'model.free'] as const
export type Kind = (typeof KINDS)[number]

/** A small id space so that collisions, overwrites and `NotOwner` happen often. */
export const IDS = ['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2'] as const

export interface Data {
  readonly group: string
  readonly v: number
}

export type Rec = DataspaceRecord<Data>

/** The error codes the model predicts. */
export type Code = 'NotOwner' | 'NotFound' | 'Conflict' | 'ProcessExited'

/** A selector from the fixed table, with its reference reading. */
export interface ModelSelector {
  readonly selector: Selector
  readonly matches: (record: Rec) => boolean
}

/** What watches and the list checks select on. Index 0 is "everything". */
export const SELECTORS: readonly ModelSelector[] = [
  { selector: {}, matches: () => true },
  { selector: { id: 'a*' }, matches: (r) => r.id.startsWith('a') },
  { selector: { fields: 'group=x' }, matches: (r) => r.data.group === 'x' },
  { selector: { labels: 'tier=web' }, matches: (r) => r.labels['tier'] === 'web' },
  { selector: { fields: 'group!=x' }, matches: (r) => r.data.group !== 'x' },
  // Kubernetes: `!=` also matches records that lack the label.
  { selector: { labels: 'tier!=web' }, matches: (r) => r.labels['tier'] !== 'web' },
  {
    selector: { id: 'b?', fields: 'group=y' },
    matches: (r) => /^b.$/.test(r.id) && r.data.group === 'y',
  },
  { selector: { fields: { group: '' } }, matches: (r) => r.data.group === '' },
  { selector: { labels: '!tier' }, matches: (r) => !('tier' in r.labels) },
  {
    selector: { id: 'a*', labels: 'tier in (web,db)', fields: 'group!=y' },
    matches: (r) => r.id.startsWith('a') && 'tier' in r.labels && r.data.group !== 'y',
  },
]

/** A claim: which records it selects and the patch it merges into the first (lowest id). */
export interface ClaimSpec {
  readonly selector: { readonly id?: string; readonly fields?: string; readonly labels?: string }
  readonly patch: Partial<Data>
  readonly matches: (record: Rec) => boolean
}

export const CLAIMS: readonly ClaimSpec[] = [
  { selector: { fields: 'group=x' }, patch: { group: 'y' }, matches: (r) => r.data.group === 'x' },
  {
    selector: { fields: 'group=y', labels: 'tier=web' },
    patch: { group: 'x', v: 100 },
    matches: (r) => r.data.group === 'y' && r.labels['tier'] === 'web',
  },
  // The patch keeps the record matching: claiming it again picks it again.
  {
    selector: { id: 'b*', fields: 'group!=x' },
    patch: { v: -1 },
    matches: (r) => r.id.startsWith('b') && r.data.group !== 'x',
  },
]

/** How a command picks `ifRevision`: the current one, a wrong one, or `0` (must not exist). */
export type IfRevision = 'right' | 'wrong' | 'zero'

export function resolveIfRevision(
  choice: IfRevision | undefined,
  current: Rec | undefined,
): number | undefined {
  const revision = current?.revision ?? 0
  switch (choice) {
    case undefined:
      return undefined
    case 'right':
      return revision
    case 'wrong':
      return revision + 1
    case 'zero':
      return 0
    default:
      choice satisfies never
      return undefined
  }
}

export type Step<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly errors: readonly Code[] }

/** A predicted failure: any of these codes is acceptable (the order of checks is not specified). */
export function fail(...errors: Code[]): Step<never> {
  return { ok: false, errors }
}

export function key(kind: string, id: string): string {
  return `${kind}/${id}`
}

/** One commit being built: a copy of the records that the ops change in order. */
export class Staging {
  readonly #base: ReadonlyMap<string, Rec>
  readonly staged: Map<string, Rec>
  readonly actor: string
  /** The revision the commit will get if it changes anything. */
  readonly revision: number

  constructor(base: ReadonlyMap<string, Rec>, actor: string, revision: number) {
    this.#base = base
    this.staged = new Map(base)
    this.actor = actor
    this.revision = revision
  }

  read(kind: string, id: string): Rec | undefined {
    return this.staged.get(key(kind, id))
  }

  assert(
    kind: string,
    id: string,
    data: Data,
    labels: Labels | undefined,
    ifRevision: number | undefined,
  ): Step<Rec> {
    const current = this.read(kind, id)
    const errors: Code[] = []
    if (ifRevision !== undefined && ifRevision !== (current?.revision ?? 0)) errors.push('Conflict')
    if (current !== undefined && current.owner !== this.actor) errors.push('NotOwner')
    if (errors.length > 0) return fail(...errors)
    const record: Rec = {
      kind,
      id,
      data,
      labels: labels ?? {},
      owner: current?.owner ?? this.actor,
      revision: this.revision,
      createdRevision: current?.createdRevision ?? this.revision,
    }
    this.staged.set(key(kind, id), record)
    return { ok: true, value: record }
  }

  retract(kind: string, id: string, ifRevision: number | undefined): Step<Rec> {
    const current = this.read(kind, id)
    if (current === undefined) {
      // A missing record with a non-zero expected revision is a failed CAS as much as a miss.
      return ifRevision !== undefined && ifRevision !== 0
        ? fail('NotFound', 'Conflict')
        : fail('NotFound')
    }
    const errors: Code[] = []
    if (ifRevision !== undefined && ifRevision !== current.revision) errors.push('Conflict')
    if (current.owner !== this.actor) errors.push('NotOwner')
    if (errors.length > 0) return fail(...errors)
    this.staged.delete(key(kind, id))
    return { ok: true, value: current }
  }

  /** The lowest-id match, patched; ownership moves only with `self`. */
  claim(kind: string, spec: ClaimSpec, self: boolean): Rec | undefined {
    const chosen = sortById(
      [...this.staged.values()].filter((r) => r.kind === kind && spec.matches(r)),
    )[0]
    if (chosen === undefined) return undefined
    const record: Rec = {
      ...chosen,
      data: { ...chosen.data, ...spec.patch },
      owner: self ? this.actor : chosen.owner,
      revision: this.revision,
    }
    this.staged.set(key(kind, chosen.id), record)
    return record
  }

  /** An exit: everything `pid` owns goes. */
  removeOwnedBy(pid: string): void {
    for (const [k, record] of this.staged) if (record.owner === pid) this.staged.delete(k)
  }

  /** Whether the net effect changes anything (an assert then retract of a new id does not). */
  changed(): boolean {
    for (const [k, record] of this.staged) if (this.#base.get(k) !== record) return true
    for (const k of this.#base.keys()) if (!this.staged.has(k)) return true
    return false
  }
}

export class ReferenceModel {
  records = new Map<string, Rec>()
  revision = 0

  stage(actor: string): Staging {
    return new Staging(this.records, actor, this.revision + 1)
  }

  /** Commits `staging` if it changes anything; returns whether a revision was used. */
  commit(staging: Staging): boolean {
    if (!staging.changed()) return false
    this.records = staging.staged
    this.revision++
    return true
  }

  get(kind: string, id: string): Rec | undefined {
    return this.records.get(key(kind, id))
  }

  items(kind: string, matches: (record: Rec) => boolean = () => true): Rec[] {
    return sortById([...this.records.values()].filter((r) => r.kind === kind && matches(r)))
  }
}

export function sortById<T extends { readonly id: string }>(records: T[]): T[] {
  return records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

// ---------------------------------------------------------------------------------------------
// Commands

export type Tier = 'web' | 'db'

export type TxOp =
  | {
      readonly op: 'assert'
      readonly kind: Kind
      readonly id: string
      readonly data: Data
      readonly tier: Tier | undefined
      readonly ifRevision: IfRevision | undefined
      /** Aim at a record this process owns (picked by `id`'s position), if it owns any. */
      readonly own: boolean
    }
  | {
      readonly op: 'retract'
      readonly kind: Kind
      readonly id: string
      readonly ifRevision: IfRevision | undefined
      readonly own: boolean
    }
  | {
      readonly op: 'claim'
      readonly kind: Kind
      readonly claim: number
      readonly self: boolean
      readonly optional: boolean
    }

export interface TxCondition {
  readonly kind: Kind
  readonly id: string
  readonly check: 'revision' | 'stale-revision' | 'exists' | 'missing' | 'group-x'
}

export type Command =
  | ({ readonly t: 'assert'; readonly p: number } & Omit<Extract<TxOp, { op: 'assert' }>, 'op'>)
  | ({ readonly t: 'retract'; readonly p: number } & Omit<Extract<TxOp, { op: 'retract' }>, 'op'>)
  | {
      readonly t: 'transact'
      readonly p: number
      readonly if: readonly TxCondition[]
      readonly then: readonly TxOp[]
    }
  | {
      readonly t: 'claim'
      readonly p: number
      readonly kind: Kind
      readonly claim: number
      readonly self: 'no' | 'option' | 'patch'
    }
  | {
      readonly t: 'exit'
      readonly p: number
      /** `finish` / `crash` settle a spawned process's function; otherwise (and by default) `exit()`. */
      readonly how: 'exit' | 'finish' | 'crash'
    }
  | { readonly t: 'respawn'; readonly p: number }
  | {
      readonly t: 'watch'
      readonly kind: Kind
      readonly sel: number
      /** A queue bound of 1 event, so that commits overflow it: `reset` + a fresh snapshot. */
      readonly small: boolean
      /** Also select on the owner: this slot's current pid. */
      readonly owner: number | undefined
      /** Resume `back` revisions ago (`fromRevision`, no snapshot) instead of a snapshot. */
      readonly back: number | undefined
    }
  | { readonly t: 'unwatch'; readonly w: number; readonly how: 'close' | 'return' | 'dispose' }

export interface Setup {
  /** How many process slots (3–5); the last is `ds.spawn`ed when `spawned`. */
  readonly processes: number
  readonly spawned: boolean
}

const p = fc.nat(4)
const kind = fc.constantFrom(...KINDS)
const id = fc.constantFrom(...IDS)
const data = fc.record({ group: fc.constantFrom('x', 'y', ''), v: fc.nat(9) })
const tier = fc.option(fc.constantFrom<Tier>('web', 'db'), { nil: undefined, freq: 2 })
const ifRevision: fc.Arbitrary<IfRevision | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 4 },
  { arbitrary: fc.constant('right' as const), weight: 2 },
  { arbitrary: fc.constant('wrong' as const), weight: 1 },
  { arbitrary: fc.constant('zero' as const), weight: 1 },
)
const own = fc.boolean()

/** `undefined` three times in four. */
function rarely<T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary, weight: 1 })
}
const claim = fc.nat(CLAIMS.length - 1)

const assertOp = fc.record({
  op: fc.constant('assert' as const),
  kind,
  id,
  data,
  tier,
  ifRevision,
  own,
})
const retractOp = fc.record({ op: fc.constant('retract' as const), kind, id, ifRevision, own })
const claimOp = fc.record({
  op: fc.constant('claim' as const),
  kind,
  claim,
  self: fc.boolean(),
  optional: fc.boolean(),
})
const txOp: fc.Arbitrary<TxOp> = fc.oneof(
  { arbitrary: assertOp, weight: 4 },
  { arbitrary: retractOp, weight: 2 },
  { arbitrary: claimOp, weight: 1 },
)
// Mostly conditions that can hold, so that whole transactions commit often enough.
const txCondition: fc.Arbitrary<TxCondition> = fc.record({
  kind,
  id,
  check: fc.oneof(
    { arbitrary: fc.constant('revision' as const), weight: 3 },
    { arbitrary: fc.constantFrom('exists' as const, 'missing' as const), weight: 2 },
    { arbitrary: fc.constantFrom('stale-revision' as const, 'group-x' as const), weight: 1 },
  ),
})

export const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('assert' as const),
      p,
      kind,
      id,
      data,
      tier,
      ifRevision,
      own,
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({ t: fc.constant('retract' as const), p, kind, id, ifRevision, own }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('transact' as const),
      p,
      if: fc.array(txCondition, { maxLength: 1 }),
      then: fc.array(txOp, { minLength: 2, maxLength: 4 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('claim' as const),
      p,
      kind,
      claim,
      self: fc.constantFrom('no', 'option', 'patch'),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('exit' as const),
      p,
      how: fc.constantFrom('exit', 'finish', 'crash'),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ t: fc.constant('respawn' as const), p }), weight: 1 },
  {
    arbitrary: fc.record({
      t: fc.constant('watch' as const),
      kind,
      sel: fc.nat(SELECTORS.length - 1),
      small: fc.boolean(),
      owner: rarely(p),
      back: rarely(fc.nat(8)),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('unwatch' as const),
      w: fc.nat(7),
      how: fc.constantFrom('close', 'return', 'dispose'),
    }),
    weight: 1,
  },
)

export const setup: fc.Arbitrary<Setup> = fc.record({
  processes: fc.integer({ min: 3, max: 5 }),
  spawned: fc.boolean(),
})

// ---------------------------------------------------------------------------------------------
// Outcomes

export type Settled<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown }

export async function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await promise }
  } catch (error) {
    return { ok: false, error }
  }
}

const ERROR_CLASSES = { NotOwner, NotFound, Conflict, ProcessExited } as const

export function describeError(error: unknown): string {
  return error instanceof DataspaceError
    ? `${error.code}: ${error.message}`
    : String((error as Error | undefined)?.stack ?? error)
}

/** Checks an engine outcome against the model's: the same value, or one of the predicted errors. */
export function expectOutcome(actual: Settled<unknown>, expected: Step<unknown>): string {
  if (expected.ok) {
    if (!actual.ok) assert.fail(`expected success, got ${describeError(actual.error)}`)
    assert.deepStrictEqual(actual.value, expected.value, 'the engine returned what the model did')
    return 'ok'
  }
  if (actual.ok) {
    assert.fail(
      `expected ${expected.errors.join(' or ')}, got success: ${JSON.stringify(actual.value)}`,
    )
  }
  const error = actual.error
  assert.ok(
    error instanceof DataspaceError && (expected.errors as readonly string[]).includes(error.code),
    `expected ${expected.errors.join(' or ')}, got ${describeError(error)}`,
  )
  assert.ok(error instanceof ERROR_CLASSES[error.code as Code], `${error.code} has its own class`)
  return error.code
}

/**
 * The id a write aims at: its own `id`, or with `own`, one of the records `pid` owns (chosen by
 * `id`'s position), so that owner overwrites and retracts succeed often enough to matter.
 */
export function aim(
  records: Iterable<Rec>,
  target: { readonly kind: Kind; readonly id: string; readonly own: boolean },
  pid: string,
): string {
  if (!target.own) return target.id
  const owned = [...records].filter((r) => r.kind === target.kind && r.owner === pid)
  if (owned.length === 0) return target.id
  sortById(owned)
  return (owned[IDS.indexOf(target.id as (typeof IDS)[number]) % owned.length] as Rec).id
}

// ---------------------------------------------------------------------------------------------
// Watch draining

/** A `next()` that lost the race stays pending; the next drain must take its result. */
const pending = new WeakMap<object, Promise<IteratorResult<WatchEvent<Data>, undefined>>>()

/**
 * Takes every event already queued on a watch. The engine delivers synchronously at commit time,
 * so once a write has been awaited, one macrotask turn without an event means "caught up".
 * Returns `done: true` if the stream ended.
 */
export async function drainWatch(
  watch: Watch<Data>,
): Promise<{ events: WatchEvent<Data>[]; done: boolean }> {
  const events: WatchEvent<Data>[] = []
  for (;;) {
    let next = pending.get(watch)
    if (next === undefined) {
      next = watch.next()
      pending.set(watch, next)
    }
    const result = await Promise.race([
      next,
      new Promise<'idle'>((resolve) => setImmediate(() => resolve('idle'))),
    ])
    if (result === 'idle') return { events, done: false }
    pending.delete(watch)
    if (result.done === true) return { events, done: true }
    events.push(result.value)
  }
}

/** Rejects after `ms` unless `promise` settles first (a hung engine fails instead of stalling). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
