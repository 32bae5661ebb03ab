import { recordBytes } from './record-bytes.js'
import type { DataspaceRecord, RetractReason } from '../model/types.js'

/** One record's transition in a commit: created, overwritten or removed. */
export interface Change {
  readonly kind: string
  readonly id: string
  readonly before: DataspaceRecord | undefined
  readonly after: DataspaceRecord | undefined
  /** Why it was removed (set when `after` is undefined). */
  readonly reason: RetractReason | undefined
}

/** Everything one revision did. */
export interface ChangeSet {
  readonly revision: number
  readonly changes: readonly Change[]
}

/** Fixed cost of one change in the history (the change object and its slot). */
const CHANGE_OVERHEAD = 64

/**
 * What a commit adds to the memory held: each change's previous version. A change's new
 * version is either the current record (counted with the records) or the previous version of
 * a later change still held (the history drops oldest first), so counting `before` counts every
 * version once.
 */
export function commitBytes(commit: ChangeSet): number {
  let bytes = 0
  for (const change of commit.changes) {
    bytes += CHANGE_OVERHEAD + (change.before === undefined ? 0 : recordBytes(change.before))
  }
  return bytes
}

/**
 * The recent commits, kept so that watches can resume from a revision and continue tokens can
 * page at the revision they started at. Bounded by a number of changes (not commits) and by
 * estimated bytes, because memory is what runs out: one session overwriting a 1 MB record must
 * not keep every version. The oldest commits go first; the newest is always kept, however large.
 */
export class History {
  #commits: ChangeSet[] = []
  /** Estimated bytes of each held commit, aligned with `#commits`. */
  #sizes: number[] = []
  #head = 0
  #changes = 0
  #bytes = 0
  #trimmed = 0
  readonly #maxChanges: number
  readonly #maxBytes: number
  /** Commits after this revision are all still held. */
  #floor = 0

  /**
   * @param maxBytes the byte cap (estimated, see record-bytes.ts)
   * @param start the revision the history begins after (a store loaded at that revision)
   */
  constructor(maxChanges: number, maxBytes = Infinity, start = 0) {
    this.#maxChanges = maxChanges
    this.#maxBytes = maxBytes
    this.#floor = start
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#bytes
  }

  /** Commits dropped so far to stay within the caps. */
  get trimmed(): number {
    return this.#trimmed
  }

  /** The oldest revision R such that every commit after R is still here. */
  get floor(): number {
    return this.#floor
  }

  /** Adds the newest commit, then drops the oldest ones while over either cap. */
  append(commit: ChangeSet): void {
    const size = commitBytes(commit)
    this.#commits.push(commit)
    this.#sizes.push(size)
    this.#changes += commit.changes.length
    this.#bytes += size
    while (
      (this.#changes > this.#maxChanges || this.#bytes > this.#maxBytes) &&
      this.#commits.length - this.#head > 1
    ) {
      const dropped = this.#commits[this.#head] as ChangeSet
      this.#commits[this.#head] = undefined as unknown as ChangeSet
      this.#changes -= dropped.changes.length
      this.#bytes -= this.#sizes[this.#head] as number
      this.#head++
      this.#trimmed++
      this.#floor = dropped.revision
    }
    if (this.#head > 1024 && this.#head * 2 > this.#commits.length) {
      this.#commits = this.#commits.slice(this.#head)
      this.#sizes = this.#sizes.slice(this.#head)
      this.#head = 0
    }
  }

  /**
   * Forgets every commit and starts again after `revision` (a follower that started over from a
   * snapshot): a watch resuming from before it gets `reset` + a snapshot.
   */
  restart(revision: number): void {
    this.#trimmed += this.#commits.length - this.#head
    this.#commits = []
    this.#sizes = []
    this.#head = 0
    this.#changes = 0
    this.#bytes = 0
    this.#floor = revision
  }

  /** Whether every commit after `revision` is still held. */
  covers(revision: number): boolean {
    return revision >= this.#floor
  }

  /** Commits with a revision greater than `revision`, oldest first (check `covers` first). */
  *since(revision: number): Iterable<ChangeSet> {
    // Revisions are gap-free, so a commit's position follows from its revision.
    const first = this.#commits[this.#head]
    if (first === undefined) return
    const start = Math.max(this.#head, this.#head + (revision + 1 - first.revision))
    for (let i = start; i < this.#commits.length; i++) yield this.#commits[i] as ChangeSet
  }

  /**
   * The state at `revision` of every id of `kind` changed since then: id → record (or undefined
   * when it did not exist). Everything else of that kind is unchanged since `revision`.
   */
  stateAt(kind: string, revision: number): Map<string, DataspaceRecord | undefined> {
    const state = new Map<string, DataspaceRecord | undefined>()
    for (const commit of this.since(revision)) {
      for (const change of commit.changes) {
        if (change.kind === kind && !state.has(change.id)) state.set(change.id, change.before)
      }
    }
    return state
  }
}
