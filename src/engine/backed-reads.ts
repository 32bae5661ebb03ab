import type { Backend } from './ports/backend.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { Change } from './history.js'
import { KindStore } from './kind-store.js'
import { byId } from './query-planner.js'
import type { DataspaceRecord, Selector } from '../model/types.js'
import { freezeJson } from '../model/validate.js'

type Rec = DataspaceRecord

/** One read of a non-resident kind: the matches of a selector after an id, at least `need` of them. */
export interface ReadSpec {
  readonly kind: string
  /** What the engine re-applies in memory. */
  readonly selector: CompiledSelector
  /** What the backend pushes down (the same selector, uncompiled). */
  readonly source: Selector
  /** Only ids greater than this. */
  readonly after?: string | undefined
  /** How many matches the caller needs (`Infinity`: all of them). */
  readonly need: number
}

/** A read's answer, exact at the moment `use` runs. */
export interface ReadResult {
  /** The matches in id order, every one in the covered range and none outside it. */
  readonly records: readonly Rec[]
  /**
   * The last id the range covers, or `undefined` when it covers every id after `after`. Ids past
   * it were not read: there may be matches there.
   */
  readonly coveredTo: string | undefined
}

/** A write to a non-resident kind not yet known to be in the backend (or in every open read). */
interface Pending {
  readonly record: Rec | undefined
  readonly revision: number
}

const FIRST_CHUNK_ALL = 1_000
const MAX_CHUNK = 50_000

/**
 * The read path of non-resident kinds (docs/backends.md, "Non-resident kinds"): their records live only in the
 * backend, so the engine reads them with the backend's pushed-down `query` and merges in what
 * the backend may not have yet.
 *
 * The engine is the only writer, so its own writes are always the newest: every write to a
 * non-resident kind is kept in a **pending** map (id → the record, or a removal) until it is
 * durable AND every read that started before it was durable has finished. A read takes the
 * backend's rows, drops those whose id is pending, and adds the pending records that match: the
 * state as of the engine's current revision, for every id in the covered range. That merge runs
 * synchronously right before `use`, so a write can stage against it and commit in the same turn
 * — no other commit comes between the read and the write it informs.
 *
 * It also counts, per non-resident kind, how many records each owner holds, so that an exit
 * reads the backend only when the process owned something there.
 */
export class BackedReads {
  readonly #backend: Backend & Required<Pick<Backend, 'query'>>
  readonly #durableRevision: () => number
  /** kind → id → the newest write */
  readonly #pending = new Map<string, Map<string, Pending>>()
  /** read id → the durable revision when it started */
  readonly #reads = new Map<number, number>()
  #readCounter = 0
  /** kind → owner → records held */
  readonly #owners = new Map<string, Map<string, number>>()
  /** Reads wait for this (the engine's start-up reaping), unless they are part of it. */
  ready: Promise<void> = Promise.resolve()

  constructor(backend: Backend & Required<Pick<Backend, 'query'>>, durableRevision: () => number) {
    this.#backend = backend
    this.#durableRevision = durableRevision
  }

  /** Seeds the per-owner counts from what the backend loaded. */
  seedOwners(owned: readonly { kind: string; owner: string; count: number }[]): void {
    for (const { kind, owner, count } of owned) this.#count(kind, owner, count)
  }

  /** Owners holding records of non-resident kinds, with the kinds they hold them in. */
  owners(): Map<string, string[]> {
    const byOwner = new Map<string, string[]>()
    for (const [kind, counts] of this.#owners) {
      for (const owner of counts.keys()) {
        const kinds = byOwner.get(owner)
        if (kinds === undefined) byOwner.set(owner, [kind])
        else kinds.push(kind)
      }
    }
    return byOwner
  }

  /** The non-resident kinds in which `owner` holds records. */
  kindsOwnedBy(owner: string): string[] {
    const kinds: string[] = []
    for (const [kind, counts] of this.#owners) if (counts.has(owner)) kinds.push(kind)
    return kinds
  }

  /** How many records of non-resident kinds `owner` holds. */
  ownedCount(owner: string): number {
    let count = 0
    for (const counts of this.#owners.values()) count += counts.get(owner) ?? 0
    return count
  }

  /** Takes a committed change of a non-resident kind (the engine applies no store for it). */
  applyChange(change: Change, revision: number): void {
    let kind = this.#pending.get(change.kind)
    if (kind === undefined) this.#pending.set(change.kind, (kind = new Map<string, Pending>()))
    kind.set(change.id, { record: change.after, revision })
    const before = change.before?.owner
    const after = change.after?.owner
    if (before !== after) {
      if (before != null) this.#count(change.kind, before, -1)
      if (after != null) this.#count(change.kind, after, 1)
    }
  }

  /**
   * Forgets pending writes that every open read and the backend already reflect: durable, and
   * not newer than what the oldest open read could have missed.
   */
  collect(): void {
    let horizon = this.#durableRevision()
    for (const started of this.#reads.values()) if (started < horizon) horizon = started
    for (const [kindName, kind] of this.#pending) {
      for (const [id, pending] of kind) if (pending.revision <= horizon) kind.delete(id)
      if (kind.size === 0) this.#pending.delete(kindName)
    }
  }

  /**
   * Reads every spec (in parallel, in chunks, until each has `need` matches or is exhausted),
   * then runs `use` synchronously on the merged answers and returns what it returns. `use` sees
   * the state at the engine's current revision; a write staged and applied inside it commits
   * against exactly what it read.
   */
  async read<R>(
    specs: readonly ReadSpec[],
    use: (results: ReadResult[]) => R,
    options: { startup?: boolean } = {},
  ): Promise<R> {
    if (options.startup !== true) await this.ready
    const readId = ++this.#readCounter
    this.#reads.set(readId, this.#durableRevision())
    try {
      const cursors = specs.map((spec) => new Cursor(spec, this.#chunkFor(spec)))
      let due = cursors
      for (;;) {
        await Promise.all(due.map((cursor) => cursor.fetch(this.#backend)))
        // From here to `use`, nothing awaits: the merge and the caller's commit share one turn.
        const results = cursors.map((cursor) => cursor.merge(this.#pending.get(cursor.spec.kind)))
        due = cursors.filter((cursor, i) => !cursor.satisfied(results[i] as ReadResult))
        if (due.length === 0) return use(results)
      }
    } finally {
      this.#reads.delete(readId)
      this.collect()
    }
  }

  /** Enough rows for `need` matches even if every pending write of the kind took one away. */
  #chunkFor(spec: ReadSpec): number {
    if (spec.need === Infinity) return FIRST_CHUNK_ALL
    return Math.min(MAX_CHUNK, spec.need + (this.#pending.get(spec.kind)?.size ?? 0) + 1)
  }

  #count(kind: string, owner: string, delta: number): void {
    let counts = this.#owners.get(kind)
    if (counts === undefined) this.#owners.set(kind, (counts = new Map<string, number>()))
    const next = (counts.get(owner) ?? 0) + delta
    if (next > 0) counts.set(owner, next)
    else counts.delete(owner)
    if (counts.size === 0) this.#owners.delete(kind)
  }
}

/** One spec's rows so far, fetched in growing chunks after its last id. */
class Cursor {
  readonly spec: ReadSpec
  readonly #rows: Rec[] = []
  #chunk: number
  #last: string | undefined
  #exhausted = false

  constructor(spec: ReadSpec, chunk: number) {
    this.spec = spec
    this.#chunk = chunk
    this.#last = spec.after
  }

  async fetch(backend: Required<Pick<Backend, 'query'>>): Promise<void> {
    const page =
      this.#last === undefined ? { limit: this.#chunk } : { limit: this.#chunk, after: this.#last }
    const rows = await backend.query(this.spec.kind, this.spec.source, page)
    for (const row of rows) this.#rows.push(freezeJson(row, 'record', Infinity))
    if (rows.length < this.#chunk) this.#exhausted = true
    else this.#last = (rows[rows.length - 1] as Rec).id
    this.#chunk = Math.min(MAX_CHUNK, this.#chunk * 2)
  }

  /** The exact matches in the covered range: backend rows, overridden by pending writes. */
  merge(pending: Map<string, Pending> | undefined): ReadResult {
    const { selector, after } = this.spec
    const coveredTo = this.#exhausted ? undefined : this.#last
    const records: Rec[] = []
    for (const row of this.#rows) {
      if (pending?.has(row.id) !== true && selector.matches(row)) records.push(row)
    }
    if (pending !== undefined) {
      let added = false
      for (const [id, write] of pending) {
        if (write.record === undefined || (after !== undefined && id <= after)) continue
        if (coveredTo !== undefined && id > coveredTo) continue
        if (selector.matches(write.record)) {
          records.push(write.record)
          added = true
        }
      }
      if (added) records.sort(byId)
    }
    return { records, coveredTo }
  }

  satisfied(result: ReadResult): boolean {
    return this.#exhausted || result.records.length >= this.spec.need
  }
}

/**
 * A kind store holding only what a read brought in: what a transaction stages against for a
 * non-resident kind. It has the kind's schema, fields and indexes, so claims plan as usual;
 * `claimBounds` keeps a claim inside the id range its read covered.
 */
export function viewStore(of: KindStore, records: Iterable<Rec>): KindStore {
  const view = new KindStore(of.kind)
  view.resident = false
  view.schema = of.schema
  view.closedFields = of.closedFields
  view.setIndexes([...of.fieldIndexes.keys()])
  for (const record of records) {
    if (!view.records.has(record.id)) view.put(record, undefined)
  }
  return view
}
