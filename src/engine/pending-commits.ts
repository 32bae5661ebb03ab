import type { Commit } from './history.js'
import type { DataspaceRecord } from './types.js'

/** One key to put back as the store holds it: `current` is in memory now, `target` is stored. */
export interface Undo {
  readonly kind: string
  readonly id: string
  readonly current: DataspaceRecord | undefined
  readonly target: DataspaceRecord | undefined
}

interface Entry {
  readonly commit: Commit
  refused: boolean
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

  push(commit: Commit): void {
    this.#entries.push({ commit, refused: false })
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
   * Marks the commit at `revision` refused and says how to make memory equal the store again.
   * A key that a later commit changed is left alone: memory holds that later version, which is
   * (or will be) stored. Otherwise the key goes back to the version before the refused commit —
   * or, when the commit before it on that key was refused too, to the one before that, and so on:
   * the last version the store really took.
   */
  refuse(revision: number): Undo[] {
    const first = this.#entries[this.#head]
    if (first === undefined) return []
    // Revisions are gap-free, so a commit's position follows from its revision.
    const at = this.#head + (revision - first.commit.revision)
    const entry = this.#entries[at]
    if (entry?.commit.revision !== revision) return []
    entry.refused = true
    const open = new Map<string, Undo>()
    for (const change of entry.commit.changes) {
      open.set(keyOf(change.kind, change.id), {
        kind: change.kind,
        id: change.id,
        current: change.after,
        target: change.before,
      })
    }
    for (let i = at + 1; i < this.#entries.length && open.size > 0; i++) {
      for (const change of (this.#entries[i] as Entry).commit.changes) {
        open.delete(keyOf(change.kind, change.id))
      }
    }
    const undos: Undo[] = []
    for (let i = at - 1; i >= this.#head && open.size > 0; i--) {
      const earlier = this.#entries[i] as Entry
      for (const change of earlier.commit.changes) {
        const key = keyOf(change.kind, change.id)
        const undo = open.get(key)
        if (undo === undefined) continue
        if (earlier.refused) {
          open.set(key, { ...undo, target: change.before })
        } else {
          undos.push(undo)
          open.delete(key)
        }
      }
    }
    undos.push(...open.values())
    return undos.filter((undo) => undo.current !== undo.target)
  }
}
