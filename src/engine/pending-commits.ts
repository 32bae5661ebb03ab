import type { ChangeSet } from './history.js'
import type { DataspaceRecord } from '../model/types.js'

/** One key to put back as the store holds it: `current` is in memory now, `target` is stored. */
export interface Undo {
  readonly kind: string
  readonly id: string
  readonly current: DataspaceRecord | undefined
  readonly target: DataspaceRecord | undefined
}

interface Entry {
  readonly commit: ChangeSet
  /**
   * For keys whose previous change was refused: the version the store holds before this commit
   * (this commit's own `before` never reached the store).
   */
  stored?: Map<string, DataspaceRecord | undefined>
}

const keyOf = (kind: string, id: string): string => JSON.stringify([kind, id])

/**
 * The commits applied in memory but not yet durable, with their `before` versions, so that one
 * the backend refuses can be undone (docs/internals.md, "Refused commits"). Only references to
 * commits the history and the runtime's queue hold anyway; settled ones are forgotten.
 */
export class PendingCommits {
  #entries: Entry[] = []
  #head = 0

  push(commit: ChangeSet): void {
    this.#entries.push({ commit })
  }

  /** Forgets every commit: none of them will be stored (a cluster node starting over). */
  clear(): void {
    this.#entries = []
    this.#head = 0
  }

  /** Forgets every commit up to `revision`: it is durable (or stored empty). */
  settle(revision: number): void {
    while (this.#head < this.#entries.length) {
      const entry = this.#entries[this.#head] as Entry
      if (entry.commit.revision > revision) break
      this.#entries[this.#head++] = undefined as unknown as Entry
    }
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }

  /**
   * The commit at `revision` was refused: how to make memory equal the store again. A key that
   * a later commit changed is left alone (memory holds that later version, which is or will be
   * stored), but that later commit learns what the store holds before it, in case it is refused
   * too. Every other key goes back to the version the store holds.
   */
  refuse(revision: number): Undo[] {
    const first = this.#entries[this.#head]
    if (first === undefined) return []
    // Revisions are gap-free, so a commit's position follows from its revision.
    const at = this.#head + (revision - first.commit.revision)
    const entry = this.#entries[at]
    if (entry?.commit.revision !== revision) return []
    const open = new Map<string, Undo>()
    for (const change of entry.commit.changes) {
      const key = keyOf(change.kind, change.id)
      const target = entry.stored?.has(key) === true ? entry.stored.get(key) : change.before
      open.set(key, { kind: change.kind, id: change.id, current: change.after, target })
    }
    for (let i = at + 1; i < this.#entries.length && open.size > 0; i++) {
      const later = this.#entries[i] as Entry
      for (const change of later.commit.changes) {
        const key = keyOf(change.kind, change.id)
        const undo = open.get(key)
        if (undo === undefined) continue
        later.stored ??= new Map()
        later.stored.set(key, undo.target)
        open.delete(key)
      }
    }
    return [...open.values()].filter((undo) => undo.current !== undo.target)
  }
}
