import { valueBytes } from '../../engine/index.js'
import type { SessionStore } from '../session-store.js'
import type { Session } from '../session-table.js'

/** How many answered writes a session remembers for resent calls (in memory and in storage). */
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
 * Answers stored with their commits (durable-answers.ts) are marked, so that the storage forgets
 * them when this cache does: it holds at most the same {@link REMEMBERED} per session.
 */
export class CallCache {
  readonly #answers = new Map<number, Promise<unknown>>()
  readonly #stored = new Set<number>()
  readonly #release: (id: number) => void
  /** Estimated bytes of each settled answer still remembered. */
  readonly #sizes = new Map<number, number>()
  #bytes = 0

  /** @param release is told of each stored answer this cache lets go. */
  constructor(release: (id: number) => void) {
    this.#release = release
  }

  /** The answer of call `id`: remembered, or computed now by `run` and remembered. */
  answer(id: number, run: () => Promise<unknown>): Promise<unknown> {
    const known = this.#answers.get(id)
    if (known !== undefined) return known
    const answer = run()
    this.#remember(id, answer)
    // Only the outcome is cached; an unhandled rejection here would be reported twice.
    answer.then(
      (value) => this.#weigh(id, valueBytes(value)),
      () => {},
    )
    return answer
  }

  /** Call `id`'s answer is in storage (or on its way there, with its commit). */
  stored(id: number): void {
    // Already let go (a thousand calls overtook it): storage lets it go too.
    if (!this.#answers.has(id)) this.#release(id)
    else this.#stored.add(id)
  }

  /** An answer a previous server stored (after a restart). */
  restore(id: number, value: unknown): void {
    this.#stored.add(id)
    this.#remember(id, Promise.resolve(value))
    this.#weigh(id, valueBytes(value))
  }

  #remember(id: number, answer: Promise<unknown>): void {
    this.#answers.set(id, answer)
    // Map order is insertion order: the first key is the oldest.
    while (this.#answers.size > REMEMBERED)
      this.#forget(this.#answers.keys().next().value as number)
  }

  /** Counts a settled answer's bytes, then forgets the oldest answers while over the cap. */
  #weigh(id: number, bytes: number): void {
    if (!this.#answers.has(id) || this.#sizes.has(id)) return
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
    if (this.#stored.delete(id)) this.#release(id)
  }
}

const caches = new WeakMap<Session, CallCache>()

/**
 * The session's cache; each stored answer it lets go is dropped from `store` too. Looked up on
 * every write call: the release callback is made once, with the cache.
 */
export function callCacheOf(session: Session, store: SessionStore): CallCache {
  let cache = caches.get(session)
  if (cache === undefined) {
    const id = session.id
    cache = new CallCache((call) => store.dropAnswer({ session: id, call }))
    caches.set(session, cache)
  }
  return cache
}
