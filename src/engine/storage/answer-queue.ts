import type { AnswerKey, StoredAnswer } from '../ports/backend.js'

/** How long a held answer may keep the next batch waiting before it is written without it. */
export const ANSWER_HOLD_MS = 1_000

/**
 * A place reserved for the answer of a write call whose commit is applied in memory but not yet
 * taken into a batch. `fill` queues the answer (true) unless that commit has been taken already
 * (false: it went without it); `release` gives the place up.
 */
export interface AnswerHold {
  readonly revision: number
  fill(answer: StoredAnswer): boolean
  release(): void
}

/**
 * The answers the runtime writes with their commits (docs/backends.md, "Answers"). The server
 * holds a place for an answer as soon as its write is applied in memory; the next batch is not
 * taken while a place is held (at most {@link ANSWER_HOLD_MS}), so a commit and its answer are
 * stored in one batch: after a crash both exist, or neither.
 */
export class AnswerQueue {
  readonly #holds = new Set<{ readonly revision: number }>()
  #puts: StoredAnswer[] = []
  #deletes: AnswerKey[] = []
  /** The highest revision handed to a batch. */
  #taken: number
  #waiting: { promise: Promise<void>; resolve(): void; timer: NodeJS.Timeout } | undefined

  constructor(revision: number) {
    this.#taken = revision
  }

  /** A place for the answer of the commit at `revision`; `undefined` once it is in a batch. */
  hold(revision: number): AnswerHold | undefined {
    if (revision <= this.#taken) return undefined
    const key = { revision }
    this.#holds.add(key)
    const settle = (): boolean => {
      const held = this.#holds.delete(key)
      if (this.#holds.size === 0) this.#wake()
      return held
    }
    return {
      revision,
      fill: (answer) => {
        if (!settle() || revision <= this.#taken) return false
        this.#puts.push(answer)
        return true
      },
      release: () => {
        settle() // whether it was still held does not matter to a release
      },
    }
  }

  /** Forgets a stored answer (a session's cache let it go). */
  drop(key: AnswerKey): void {
    this.#deletes.push(key)
  }

  get pending(): boolean {
    return this.#puts.length > 0 || this.#deletes.length > 0
  }

  /**
   * `undefined` when no answer is held; else settles when every held one is filled or released,
   * or after {@link ANSWER_HOLD_MS} (then those commits go without their answers).
   */
  blocking(): Promise<void> | undefined {
    if (this.#holds.size === 0) return undefined
    if (this.#waiting === undefined) {
      let resolve = (): void => {}
      const promise = new Promise<void>((r) => (resolve = r))
      const timer = setTimeout(() => {
        this.#holds.clear()
        this.#wake()
      }, ANSWER_HOLD_MS)
      this.#waiting = { promise, resolve, timer }
    }
    return this.#waiting.promise
  }

  /** What goes into the batch whose last commit is `revision` (`undefined`: no commit). */
  take(revision: number | undefined): { put: StoredAnswer[]; delete: AnswerKey[] } {
    if (revision !== undefined) this.#taken = Math.max(this.#taken, revision)
    const taken = { put: this.#puts, delete: this.#deletes }
    this.#puts = []
    this.#deletes = []
    return taken
  }

  #wake(): void {
    const waiting = this.#waiting
    if (waiting === undefined) return
    this.#waiting = undefined
    clearTimeout(waiting.timer)
    waiting.resolve()
  }
}
