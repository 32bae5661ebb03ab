import type { CompiledSelector } from './compiled-selector.js'
import type { Change, ChangeSet } from './history.js'
import type { DataspaceRecord, WatchEvent } from '../model/types.js'

/** Anything that wants a kind's changes: public watches and the facades' monitors. */
export interface Subscriber {
  readonly kind: string
  readonly selector: CompiledSelector
  /** Called once per commit (a Yjs-style turn) with every event of that commit for this subscriber. */
  onEvents(events: WatchEvent[]): void
  /**
   * The most events this subscriber can take in one batch. A batch that would exceed it is cut
   * short (the subscriber resynchronises instead of reading it), so a huge commit does not
   * build events nobody will read.
   */
  readonly capacity?: number
}

/**
 * A kind's subscribers, indexed by what they select on ids, so that a change reaches the
 * subscribers that may match without testing the others: exact ids by map lookup, literal-prefix
 * globs by looking up each distinct prefix length (few in practice), and only id-less or
 * wildcard-first subscribers tested one by one.
 */
class KindSubscribers {
  readonly exact = new Map<string, Set<Subscriber>>()
  readonly byPrefix = new Map<string, Set<Subscriber>>()
  /** prefix length → how many prefixes of that length are registered */
  readonly prefixLengths = new Map<number, number>()
  readonly unindexed = new Set<Subscriber>()
  size = 0

  add(subscriber: Subscriber): void {
    const glob = subscriber.selector.id
    this.size++
    if (glob === undefined || glob.prefix === '') this.unindexed.add(subscriber)
    else if (glob.exact) addTo(this.exact, glob.prefix, subscriber)
    else {
      if (addTo(this.byPrefix, glob.prefix, subscriber)) {
        this.prefixLengths.set(
          glob.prefix.length,
          (this.prefixLengths.get(glob.prefix.length) ?? 0) + 1,
        )
      }
    }
  }

  remove(subscriber: Subscriber): boolean {
    const glob = subscriber.selector.id
    let removed: boolean
    if (glob === undefined || glob.prefix === '') removed = this.unindexed.delete(subscriber)
    else if (glob.exact) removed = removeFrom(this.exact, glob.prefix, subscriber) !== 'absent'
    else {
      const outcome = removeFrom(this.byPrefix, glob.prefix, subscriber)
      removed = outcome !== 'absent'
      if (outcome === 'emptied') {
        const count = (this.prefixLengths.get(glob.prefix.length) ?? 1) - 1
        if (count === 0) this.prefixLengths.delete(glob.prefix.length)
        else this.prefixLengths.set(glob.prefix.length, count)
      }
    }
    if (removed) this.size--
    return removed
  }

  /** Calls `visit` for every subscriber whose id selector may match `id` (the caller tests the rest). */
  forCandidates(id: string, visit: (subscriber: Subscriber) => void): void {
    const exact = this.exact.get(id)
    if (exact !== undefined) for (const subscriber of exact) visit(subscriber)
    for (const length of this.prefixLengths.keys()) {
      if (length > id.length) continue
      const set = this.byPrefix.get(id.slice(0, length))
      if (set !== undefined) for (const subscriber of set) visit(subscriber)
    }
    for (const subscriber of this.unindexed) visit(subscriber)
  }
}

/** Routes each commit's changes to the subscribers they concern, once per commit. */
export class WatchHub {
  readonly #byKind = new Map<string, KindSubscribers>()
  #count = 0

  /** How many subscribers are registered. */
  get size(): number {
    return this.#count
  }

  add(subscriber: Subscriber): void {
    let kind = this.#byKind.get(subscriber.kind)
    if (kind === undefined) this.#byKind.set(subscriber.kind, (kind = new KindSubscribers()))
    kind.add(subscriber)
    this.#count++
  }

  remove(subscriber: Subscriber): void {
    const kind = this.#byKind.get(subscriber.kind)
    if (kind?.remove(subscriber) !== true) return
    this.#count--
    if (kind.size === 0) this.#byKind.delete(subscriber.kind)
  }

  /** Delivers a commit: every subscriber gets one `onEvents` call with all of its events. */
  dispatch(commit: ChangeSet): void {
    if (this.#count === 0) return
    const { changes, revision } = commit
    if (changes.length === 1) {
      const change = changes[0] as Change
      this.#byKind.get(change.kind)?.forCandidates(change.id, (subscriber) => {
        const event = eventFor(subscriber, change, revision)
        if (event !== undefined) subscriber.onEvents([event])
      })
      return
    }
    const batches = new Map<Subscriber, WatchEvent[]>()
    for (const change of changes) {
      this.#byKind.get(change.kind)?.forCandidates(change.id, (subscriber) => {
        const batch = batches.get(subscriber)
        if (batch !== undefined && batch.length > (subscriber.capacity ?? Infinity)) return
        const event = eventFor(subscriber, change, revision)
        if (event === undefined) return
        if (batch === undefined) batches.set(subscriber, [event])
        else batch.push(event)
      })
    }
    for (const [subscriber, events] of batches) subscriber.onEvents(events)
  }

  /**
   * Delivers a message addressed to a record: to the watchers that select the record, or, when it
   * does not exist, to the watchers that select only on its id. Returns how many got it.
   */
  message(
    kind: string,
    id: string,
    record: DataspaceRecord | undefined,
    event: WatchEvent,
  ): number {
    let delivered = 0
    this.#byKind.get(kind)?.forCandidates(id, (subscriber) => {
      const selector = subscriber.selector
      const selected =
        record !== undefined
          ? selector.matches(record)
          : selector.idOnly && (selector.id === undefined || selector.id.test(id))
      if (!selected) return
      subscriber.onEvents([event])
      delivered++
    })
    return delivered
  }
}

/** What one change looks like to one subscriber: entering, updating, leaving its selection, or nothing. */
export function eventFor(
  subscriber: Subscriber,
  change: Change,
  revision: number,
): WatchEvent | undefined {
  const selector = subscriber.selector
  const before =
    change.before !== undefined && selector.matches(change.before) ? change.before : undefined
  const after =
    change.after !== undefined && selector.matches(change.after) ? change.after : undefined
  if (after !== undefined) {
    return before !== undefined
      ? { type: 'asserted', record: after, previous: before, revision }
      : { type: 'asserted', record: after, revision }
  }
  if (before !== undefined) {
    const reason = change.after !== undefined ? 'unmatched' : (change.reason ?? 'retract')
    return { type: 'retracted', record: before, reason, revision }
  }
  return undefined
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key)
  const created = set === undefined
  if (set === undefined) map.set(key, (set = new Set()))
  set.add(value)
  return created
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): 'absent' | 'removed' | 'emptied' {
  const set = map.get(key)
  if (set === undefined || !set.delete(value)) return 'absent'
  if (set.size > 0) return 'removed'
  map.delete(key)
  return 'emptied'
}
