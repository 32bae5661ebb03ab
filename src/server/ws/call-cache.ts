import { valueBytes } from '../../engine/index.js'
import type { Session } from '../session-table.js'

/** How many answered writes a session remembers for resent calls. */
const REMEMBERED = 1024
/**
 * Estimated bytes of answers a session remembers (1 MiB): an answer carries the record written,
 * so 1024 answers of 1 MB overwrites would pin 1 GB per session. Past it the oldest answers go;
 * the newest is always kept, since a resend after a reconnect is of the latest calls.
 */
const REMEMBERED_BYTES = 1024 * 1024

/**
 * Makes a write resent after a reconnect take effect once. A client numbers its calls per
 * session and, when a connection drops with writes unanswered, sends them again with the same
 * ids on the resumed session: the server answers from here instead of writing twice (etcd and
 * nats.js leave this to the application; the session already gives us the scope for it).
 */
export class CallCache {
  readonly #answers = new Map<number, Promise<unknown>>()
  /** Estimated bytes of each settled answer still remembered. */
  readonly #sizes = new Map<number, number>()
  #bytes = 0

  /** The answer of call `id`: remembered, or computed now by `run` and remembered. */
  answer(id: number, run: () => Promise<unknown>): Promise<unknown> {
    const known = this.#answers.get(id)
    if (known !== undefined) return known
    const answer = run()
    this.#answers.set(id, answer)
    // Map order is insertion order: the first key is the oldest.
    if (this.#answers.size > REMEMBERED) this.#forget(this.#answers.keys().next().value as number)
    // Only the outcome is cached; an unhandled rejection here would be reported twice.
    answer.then(
      (value) => this.#weigh(id, valueBytes(value)),
      () => {},
    )
    return answer
  }

  /** Counts a settled answer's bytes, then forgets the oldest answers while over the cap. */
  #weigh(id: number, bytes: number): void {
    if (!this.#answers.has(id)) return
    this.#sizes.set(id, bytes)
    this.#bytes += bytes
    for (const oldest of this.#answers.keys()) {
      if (this.#bytes <= REMEMBERED_BYTES || oldest === id) break
      // A call still running stays: a resend of it must wait for it, not run it again.
      if (this.#sizes.has(oldest)) this.#forget(oldest)
    }
  }

  #forget(id: number): void {
    this.#answers.delete(id)
    this.#bytes -= this.#sizes.get(id) ?? 0
    this.#sizes.delete(id)
  }
}

const caches = new WeakMap<Session, CallCache>()

export function callCacheOf(session: Session): CallCache {
  let cache = caches.get(session)
  if (cache === undefined) caches.set(session, (cache = new CallCache()))
  return cache
}
