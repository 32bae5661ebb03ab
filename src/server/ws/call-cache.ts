import type { Session } from '../session-table.js'

/** How many answered writes a session remembers for resent calls (in memory and in storage). */
export const REMEMBERED = 1024

/**
 * Makes a write resent after a reconnect take effect once. A client numbers its calls per
 * session and, when a connection drops with writes unanswered, sends them again with the same
 * ids on the resumed session: the server answers from here instead of writing twice (etcd and
 * nats.js leave this to the application; the session already gives us the scope for it).
 * Answers stored with their commits (durable-answers.ts) are marked, so that the storage forgets
 * them when this cache does: it holds at most the same {@link REMEMBERED} per session.
 */
export class CallCache {
  readonly #answers = new Map<number, Promise<unknown>>()
  readonly #stored = new Set<number>()
  readonly #forget: (id: number) => void

  constructor(forget: (id: number) => void) {
    this.#forget = forget
  }

  /** The answer of call `id`: remembered, or computed now by `run` and remembered. */
  answer(id: number, run: () => Promise<unknown>): Promise<unknown> {
    const known = this.#answers.get(id)
    if (known !== undefined) return known
    const answer = run()
    this.#remember(id, answer)
    // Only the outcome is cached; an unhandled rejection here would be reported twice.
    answer.catch(() => {})
    return answer
  }

  /** Call `id`'s answer is in storage (or on its way there, with its commit). */
  stored(id: number): void {
    // Already let go (a thousand calls overtook it): storage lets it go too.
    if (!this.#answers.has(id)) this.#forget(id)
    else this.#stored.add(id)
  }

  /** An answer a previous server stored (after a restart). */
  restore(id: number, value: unknown): void {
    this.#stored.add(id)
    this.#remember(id, Promise.resolve(value))
  }

  #remember(id: number, answer: Promise<unknown>): void {
    this.#answers.set(id, answer)
    // Map order is insertion order: the first key is the oldest.
    while (this.#answers.size > REMEMBERED) {
      const oldest = this.#answers.keys().next().value as number
      this.#answers.delete(oldest)
      if (this.#stored.delete(oldest)) this.#forget(oldest)
    }
  }
}

const caches = new WeakMap<Session, CallCache>()

/** The session's cache; `forget(id)` is told of each stored answer it lets go. */
export function callCacheOf(session: Session, forget: (id: number) => void = () => {}): CallCache {
  let cache = caches.get(session)
  if (cache === undefined) caches.set(session, (cache = new CallCache(forget)))
  return cache
}
