import type { CompiledSelector } from './compiled-selector.js'
import { prefixEnd, sortedBucket } from './kind-store.js'
import type { Bucket, KindStore } from './kind-store.js'
import type { DataspaceRecord } from '../model/types.js'

/** How a selector is served: which index, how many candidates, and whether they come in id order. */
export interface Plan {
  /** `id`, `id-prefix`, `owner`, `field:<path>`, `label:<key>`, or `null` for a full scan. */
  readonly index: string | null
  /** Candidates visited before the full selector is applied (exact for every index but `!=`). */
  readonly estimate: number
  /** Whether candidates come in id order (otherwise in no particular order). */
  readonly ordered: boolean
  /** The candidate records (ordered plans start after `after`; others leave that to the caller). */
  candidates(after?: string): Iterable<DataspaceRecord>
  /** True when every candidate matches the whole selector, so matching can be skipped. */
  readonly covers?: boolean
}

/**
 * Picks the access path that visits the fewest records. Every index here knows its bucket sizes
 * exactly, so "most selective" is a comparison of numbers, not a guess; the id-prefix range is
 * counted only up to the best bound found so far, so a wide prefix never costs a scan to price.
 */
export function plan(store: KindStore, selector: CompiledSelector): Plan {
  const glob = selector.id
  if (glob?.exact === true) {
    const record = store.records.get(glob.prefix)
    return {
      index: 'id',
      estimate: record === undefined ? 0 : 1,
      ordered: true,
      candidates: (after) =>
        record !== undefined && (after === undefined || record.id > after) ? [record] : [],
    }
  }
  let best: Plan = fullScan(store)
  const consider = (candidate: Plan): void => {
    if (candidate.estimate < best.estimate) best = candidate
  }
  // An index "covers" a selector made of nothing but the one requirement it answers.
  const fieldCount = selector.fields?.requirements.length ?? 0
  const labelCount = selector.labels?.requirements.length ?? 0
  const only = (fields: number, labels: number, owner: boolean): boolean =>
    glob === undefined &&
    fieldCount === fields &&
    labelCount === labels &&
    (selector.owner !== undefined) === owner
  if (selector.owner !== undefined) {
    consider(fromSets('owner', [store.byOwner.get(selector.owner)], only(0, 0, true)))
  }
  for (const requirement of selector.fields?.requirements ?? []) {
    const index = store.fieldIndexes.get(requirement.path)
    if (index === undefined) continue
    const name = `field:${requirement.path}`
    if (requirement.op === '=') {
      consider(fromSets(name, [index.buckets.get(requirement.value)], only(1, 0, false)))
    } else consider(excludingBucket(name, store.size, index.buckets, requirement.value))
  }
  for (const requirement of selector.labels?.requirements ?? []) {
    const values = store.byLabel.get(requirement.key)
    const name = `label:${requirement.key}`
    switch (requirement.op) {
      case '=':
      case 'in':
        consider(
          fromSets(
            name,
            requirement.values.map((value) => values?.get(value)),
            only(0, 1, false),
          ),
        )
        break
      case 'exists':
        consider(
          fromSets(name, values === undefined ? [] : [...values.values()], only(0, 1, false)),
        )
        break
      case '!=':
      case 'notin':
      case '!exists':
      case 'gt':
      case 'lt':
        break // these match records lacking the key (or need a numeric scan): no index helps
      default:
        requirement.op satisfies never
    }
  }
  if (glob !== undefined && glob.prefix !== '')
    consider(idPrefix(store, glob.prefix, best.estimate))
  return best
}

function fullScan(store: KindStore): Plan {
  return {
    index: null,
    estimate: store.size,
    ordered: true,
    candidates: (after) => keysAfter(store, after, undefined, after),
  }
}

function idPrefix(store: KindStore, prefix: string, bound: number): Plan {
  const end = prefixEnd(prefix)
  let estimate = 0
  for (const id of store.ids.keys(prefix)) {
    if (end !== undefined && id >= end) break
    if (++estimate > bound) break
  }
  return {
    index: 'id-prefix',
    estimate,
    ordered: true,
    candidates: (after) =>
      keysAfter(store, after === undefined || after < prefix ? prefix : after, end, after),
  }
}

/** Records in id order from `from` (inclusive) up to `end` (exclusive), leaving out `after` itself. */
function* keysAfter(
  store: KindStore,
  from: string | undefined,
  end: string | undefined,
  after: string | undefined,
): Iterable<DataspaceRecord> {
  // The tree holds the records, so an ordered scan never goes back to the records map.
  const pair: [string, DataspaceRecord] = ['', undefined as unknown as DataspaceRecord]
  for (const [id, record] of store.ids.entries(from, pair)) {
    if (end !== undefined && id >= end) return
    if (id === after) continue
    yield record
  }
}

/**
 * The union of some buckets (disjoint for one label key or one field value). One bucket — the
 * common case — is served in id order from its sorted form, so a page stops at its limit and
 * nothing is sorted per query.
 */
function fromSets(index: string, buckets: readonly (Bucket | undefined)[], covers: boolean): Plan {
  let estimate = 0
  for (const bucket of buckets) estimate += bucket?.size ?? 0
  const present = buckets.filter((bucket) => bucket !== undefined)
  const only = present.length === 1 ? present[0] : undefined
  if (only !== undefined) {
    return {
      index,
      estimate,
      ordered: true,
      covers,
      candidates: (after) => {
        const sorted = sortedBucket(only)
        return after === undefined ? sorted : sorted.slice(firstAfter(sorted, after))
      },
    }
  }
  return {
    index,
    estimate,
    ordered: false,
    covers,
    *candidates() {
      for (const bucket of present) yield* bucket.values()
    },
  }
}

/** The position of the first record with an id greater than `after` (binary search). */
function firstAfter(sorted: readonly DataspaceRecord[], after: string): number {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if ((sorted[mid] as DataspaceRecord).id <= after) low = mid + 1
    else high = mid
  }
  return low
}

/** Every indexed value but one (`field!=value`). Array fields put an id in several buckets: dedupe. */
function excludingBucket(
  index: string,
  total: number,
  buckets: ReadonlyMap<string, Bucket>,
  value: string,
): Plan {
  const excluded = buckets.get(value)
  return {
    index,
    estimate: total - (excluded?.size ?? 0),
    ordered: false,
    *candidates() {
      const seen = new Set<string>()
      for (const [bucketValue, bucket] of buckets) {
        if (bucketValue === value) continue
        for (const record of bucket.values()) {
          if (excluded?.has(record.id) === true || seen.has(record.id)) continue
          seen.add(record.id)
          yield record
        }
      }
    },
  }
}

export interface SelectOptions {
  /** Only ids strictly greater than this (pagination). */
  readonly after?: string | undefined
  /** Stop once this many matches are found (in id order). */
  readonly max?: number | undefined
  /** Ids to leave out (their state at an older revision is supplied separately). */
  readonly skip?: ReadonlyMap<string, unknown> | undefined
}

/** The records matching `selector`, in id order, served from the plan's index. */
export function select(
  store: KindStore,
  selector: CompiledSelector,
  chosen: Plan,
  options: SelectOptions = {},
): DataspaceRecord[] {
  const { after, max = Infinity, skip } = options
  const out: DataspaceRecord[] = []
  for (const record of chosen.candidates(after)) {
    if (after !== undefined && record.id <= after) continue
    if (skip?.has(record.id) === true) continue
    if (chosen.covers !== true && !selector.matches(record)) continue
    out.push(record)
    // Ordered candidates arrive in id order, so the first `max` matches are the answer.
    if (chosen.ordered && out.length >= max) return out
  }
  if (!chosen.ordered) {
    out.sort(byUniqueId)
    if (out.length > max) out.length = max
  }
  return out
}

/** Ids are unique within a kind, so the comparison never needs to answer "equal". */
function byUniqueId(a: DataspaceRecord, b: DataspaceRecord): number {
  return a.id < b.id ? -1 : 1
}

export function byId(a: { readonly id: string }, b: { readonly id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
