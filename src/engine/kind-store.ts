import sortedBtree from 'sorted-btree'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { fieldValues } from '../query/index.js'
import type { DataspaceRecord } from '../model/types.js'

type Rec = DataspaceRecord

// sorted-btree is CommonJS with `exports.default`: under Node's ESM interop the class sits one level down.
const BTree = sortedBtree.default

/**
 * The records under one index key, by id. Buckets hold the records themselves, not ids, so a
 * query served from an index never goes back to the records map.
 */
export type Bucket = Map<string, Rec>

/** An index over one declared data path: value (string form) → bucket. Array fields index each element. */
class FieldIndex {
  readonly path: string
  readonly segments: readonly string[]
  readonly buckets = new Map<string, Bucket>()

  constructor(path: string) {
    this.path = path
    this.segments = path.split('.')
  }

  add(record: Rec): void {
    for (const value of fieldValues(record.data, this.segments)) addTo(this.buckets, value, record)
  }

  remove(record: Rec): void {
    for (const value of fieldValues(record.data, this.segments))
      removeFrom(this.buckets, value, record.id)
  }
}

/**
 * One kind's records and their indexes. The store only keeps indexes in step with the records;
 * choosing an index for a query is the planner's job (`query-planner.ts`).
 */
export class KindStore {
  readonly kind: string
  readonly records = new Map<string, Rec>()
  /** Every record in id order: serves literal-prefix globs, ordered scans and pagination. */
  readonly ids = new BTree<string, Rec>()
  readonly byOwner = new Map<string, Bucket>()
  /** label key → value → bucket */
  readonly byLabel = new Map<string, Map<string, Bucket>>()
  fieldIndexes = new Map<string, FieldIndex>()
  schema: StandardSchemaV1 | undefined
  /** The closed list of selectable fields, when the kind declares one. */
  closedFields: ReadonlySet<string> | undefined
  /**
   * `false` for a non-resident kind (docs/backends.md, "Non-resident kinds"): the engine's store of it holds no records,
   * and a transaction stages against a view of what was read (`backed-reads.ts`).
   */
  resident = true
  /**
   * In a view of a non-resident kind: selector key → the last id its read covered. A claim with
   * that selector must not pick past it (there may be unread matches before the record it saw).
   */
  claimBounds: Map<string, string> | undefined

  constructor(kind: string) {
    this.kind = kind
  }

  get size(): number {
    return this.records.size
  }

  /** Replaces the declared indexes, rebuilding them over the records already stored. */
  setIndexes(paths: readonly string[]): void {
    const next = new Map<string, FieldIndex>()
    for (const path of paths) {
      const existing = this.fieldIndexes.get(path)
      if (existing !== undefined) {
        next.set(path, existing)
        continue
      }
      const index = new FieldIndex(path)
      for (const record of this.records.values()) index.add(record)
      next.set(path, index)
    }
    this.fieldIndexes = next
  }

  /** Stores `record`, replacing `before` (the current record of that id, if any). */
  put(record: Rec, before: Rec | undefined): void {
    if (before !== undefined) this.#unindex(before)
    this.ids.set(record.id, record)
    this.records.set(record.id, record)
    if (record.owner !== null) addTo(this.byOwner, record.owner, record)
    for (const index of this.fieldIndexes.values()) index.add(record)
    for (const key in record.labels) {
      let values = this.byLabel.get(key)
      if (values === undefined) this.byLabel.set(key, (values = new Map<string, Bucket>()))
      addTo(values, record.labels[key] as string, record)
    }
  }

  /**
   * Removes many records at once (a commit's removals of this kind, typically a process exit).
   * The whole kind going is a reset; otherwise an owner whose every record goes loses its
   * bucket at once rather than id by id.
   */
  deleteMany(removed: readonly Rec[]): void {
    if (removed.length === this.records.size) {
      this.records.clear()
      this.ids.clear()
      this.byOwner.clear()
      this.byLabel.clear()
      for (const index of this.fieldIndexes.values()) index.buckets.clear()
      return
    }
    const perOwner = new Map<string, number>()
    for (const { owner } of removed) {
      if (owner !== null) perOwner.set(owner, (perOwner.get(owner) ?? 0) + 1)
    }
    const whole = new Set<string>()
    for (const [owner, count] of perOwner) {
      if (this.byOwner.get(owner)?.size === count) {
        whole.add(owner)
        this.byOwner.delete(owner)
      }
    }
    for (const record of removed) {
      this.records.delete(record.id)
      this.ids.delete(record.id)
      this.#unindex(record, record.owner !== null && whole.has(record.owner))
    }
  }

  delete(record: Rec): void {
    this.records.delete(record.id)
    this.ids.delete(record.id)
    this.#unindex(record)
  }

  #unindex(record: Rec, ownerGone = false): void {
    if (record.owner !== null && !ownerGone) removeFrom(this.byOwner, record.owner, record.id)
    for (const index of this.fieldIndexes.values()) index.remove(record)
    for (const key in record.labels) {
      const values = this.byLabel.get(key)
      if (values === undefined) continue
      removeFrom(values, record.labels[key] as string, record.id)
      if (values.size === 0) this.byLabel.delete(key)
    }
  }
}

/**
 * Buckets sorted by id, made on the first ordered read of a bucket and then kept in order by the
 * writes to it (a binary search and one splice each), so that a scheduler claiming from a pool
 * bucket that every claim writes does not sort the pool again per claim. A cache that takes many
 * writes relative to its size (a bulk load into a listed bucket) is dropped instead, and the next
 * ordered read sorts again: each write costs O(log n) plus a bounded share of one sort.
 */
interface SortedCache {
  readonly records: Rec[]
  /** Writes left before keeping the cache costs more than sorting again. */
  budget: number
}

const sortedBuckets = new WeakMap<Bucket, SortedCache>()

/** The bucket's records in id order. The array is the engine's: read it, never keep it. */
export function sortedBucket(bucket: Bucket): readonly Rec[] {
  let cache = sortedBuckets.get(bucket)
  if (cache === undefined) {
    const records = [...bucket.values()].sort((a, b) => (a.id < b.id ? -1 : 1))
    cache = { records, budget: Math.max(64, records.length >> 3) }
    sortedBuckets.set(bucket, cache)
  }
  return cache.records
}

/** The first position whose id is not below `id`. */
function lowerBound(records: readonly Rec[], id: string): number {
  let lo = 0
  let hi = records.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((records[mid] as Rec).id < id) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Keeps a bucket's sorted cache in step with a write: `record` put at `id`, or `id` removed. */
function updateSorted(bucket: Bucket, id: string, record: Rec | undefined): void {
  const cache = sortedBuckets.get(bucket)
  if (cache === undefined) return
  if (--cache.budget < 0) {
    sortedBuckets.delete(bucket)
    return
  }
  const at = lowerBound(cache.records, id)
  const found = cache.records[at]?.id === id
  if (record === undefined) {
    if (found) cache.records.splice(at, 1)
  } else if (found) cache.records[at] = record
  else cache.records.splice(at, 0, record)
}

function addTo<K>(map: Map<K, Bucket>, key: K, record: Rec): void {
  let bucket = map.get(key)
  if (bucket === undefined) map.set(key, (bucket = new Map<string, Rec>()))
  bucket.set(record.id, record)
  updateSorted(bucket, record.id, record)
}

function removeFrom<K>(map: Map<K, Bucket>, key: K, id: string): void {
  const bucket = map.get(key)
  if (bucket === undefined) return
  bucket.delete(id)
  updateSorted(bucket, id, undefined)
  if (bucket.size === 0) map.delete(key)
}

/** The smallest string greater than every string starting with `prefix` (for range scans). */
export function prefixEnd(prefix: string): string | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const code = prefix.charCodeAt(i)
    if (code < 0xffff) return prefix.slice(0, i) + String.fromCharCode(code + 1)
  }
  return undefined
}
