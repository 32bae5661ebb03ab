import type { Session } from '../session-table.js'

/** How many answered writes a session remembers for resent calls. */
const REMEMBERED = 1024

/**
 * Makes a write resent after a reconnect take effect once. A client numbers its calls per
 * session and, when a connection drops with writes unanswered, sends them again with the same
 * ids on the resumed session: the server answers from here instead of writing twice (etcd and
 * nats.js leave this to the application; the session already gives us the scope for it).
 */
export class CallCache {
  readonly #answers = new Map<number, Promise<unknown>>()

  /** The answer of call `id`: remembered, or computed now by `run` and remembered. */
  answer(id: number, run: () => Promise<unknown>): Promise<unknown> {
    const known = this.#answers.get(id)
    if (known !== undefined) return known
    const answer = run()
    this.#answers.set(id, answer)
    // Map order is insertion order: the first key is the oldest.
    if (this.#answers.size > REMEMBERED) {
      const oldest = this.#answers.keys().next().value as number
      this.#answers.delete(oldest)
    }
    // Only the outcome is cached; an unhandled rejection here would be reported twice.
    answer.catch(() => {})
    return answer
  }
}

const caches = new WeakMap<Session, CallCache>()

export function callCacheOf(session: Session): CallCache {
  let cache = caches.get(session)
  if (cache === undefined) caches.set(session, (cache = new CallCache()))
  return cache
}
