import type { DataspaceRecord, RetractReason } from './types.js'

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
export interface Commit {
  readonly revision: number
  readonly changes: readonly Change[]
}

/**
 * The recent commits, kept so that watches can resume from a revision and continue tokens can
 * page at the revision they started at. Bounded by a number of changes (not commits), because
 * memory is what runs out; the newest commit is always kept, however large.
 */
export class History {
  #commits: Commit[] = []
  #head = 0
  #changes = 0
  readonly #maxChanges: number
  /** Commits after this revision are all still held. */
  #floor = 0

  /** @param start the revision the history begins after (a store loaded at that revision). */
  constructor(maxChanges: number, start = 0) {
    this.#maxChanges = maxChanges
    this.#floor = start
  }

  /** The oldest revision R such that every commit after R is still here. */
  get floor(): number {
    return this.#floor
  }

  append(commit: Commit): void {
    this.#commits.push(commit)
    this.#changes += commit.changes.length
    while (this.#changes > this.#maxChanges && this.#commits.length - this.#head > 1) {
      const dropped = this.#commits[this.#head] as Commit
      this.#commits[this.#head] = undefined as unknown as Commit
      this.#head++
      this.#changes -= dropped.changes.length
      this.#floor = dropped.revision
    }
    if (this.#head > 1024 && this.#head * 2 > this.#commits.length) {
      this.#commits = this.#commits.slice(this.#head)
      this.#head = 0
    }
  }

  /** Whether every commit after `revision` is still held. */
  covers(revision: number): boolean {
    return revision >= this.#floor
  }

  /** Commits with a revision greater than `revision`, oldest first (check `covers` first). */
  *since(revision: number): Iterable<Commit> {
    // Revisions are gap-free, so a commit's position follows from its revision.
    const first = this.#commits[this.#head]
    if (first === undefined) return
    const start = Math.max(this.#head, this.#head + (revision + 1 - first.revision))
    for (let i = start; i < this.#commits.length; i++) yield this.#commits[i] as Commit
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
