import { AsyncLocalStorage } from 'node:async_hooks'
import type { AnswerHold } from '../../engine/storage/answer-queue.js'
import type { StoredAnswer } from '../../engine/ports/backend.js'
import type { Session } from '../session-table.js'
import type { SessionStore } from '../session-store.js'
import { callCacheOf } from './call-cache.js'

/** The commits one write call made, and the places held for its answer. */
interface CallScope {
  revision: number
  /** Whether the call made the commit at `revision` (then a refusal of it is its error). */
  writer: boolean
  readonly holds: AnswerHold[]
}

const scopes = new AsyncLocalStorage<CallScope>()

/**
 * Exactly once across restarts (docs/design.md, docs/protocol.md). On a durable backend a write
 * call runs in a scope: when its operation is about to wait for its commit to be durable, the
 * engine asks `defer`, which holds a place for the answer in that commit's batch and lets the
 * operation finish at once. The answer then goes into the held place — the batch is not taken
 * before — and only then is durability awaited and the answer sent. So the commit and its answer
 * are stored together, and a call re-sent after a crash is answered from storage.
 */
export function installDurableAnswers(store: SessionStore): void {
  if (!store.durable) return
  store.deferDurability((revision, writer) => {
    const scope = scopes.getStore()
    if (scope === undefined) return false
    if (revision > scope.revision) {
      scope.revision = revision
      scope.writer = writer
    } else if (revision === scope.revision) {
      scope.writer ||= writer
    }
    const hold = store.holdAnswer(revision)
    if (hold !== undefined) scope.holds.push(hold)
    return true
  })
}

/**
 * The answer to write call `id` of `session`: from its cache (in memory, or restored from
 * storage after a restart), or by running it once and storing the answer with its commit.
 */
export function answerOnce(
  store: SessionStore,
  session: Session,
  id: number,
  run: () => Promise<unknown>,
): Promise<unknown> {
  const cache = callCacheOf(session, store)
  return cache.answer(id, async () => {
    if (!store.durable) return run()
    const scope: CallScope = { revision: 0, writer: false, holds: [] }
    let value: unknown
    try {
      value = await scopes.run(scope, run)
    } catch (error) {
      // Failed writes commit nothing worth answering from storage: re-sent, they run again.
      for (const hold of scope.holds) hold.release()
      throw error
    }
    if (scope.revision === 0) return value // no commit (send, defineKind, …)
    // The last commit of the call carries its answer; the others go without.
    const last = scope.holds.pop()
    for (const hold of scope.holds) hold.release()
    if (last !== undefined) {
      if (last.revision !== scope.revision) last.release()
      else if (last.fill(stored(session, id, scope.revision, value))) cache.stored(id)
    }
    // As the writer: a commit the backend refuses (docs/backends.md) fails this call, and its
    // answer, stored only with a commit that is, never tells a re-sent call it succeeded.
    await store.durableAt(scope.revision, scope.writer)
    return value
  })
}

/**
 * Puts the answers a previous server stored back into the adopted session's cache: those it
 * loaded at start-up, or `answers` (a cluster node that took the session over).
 */
export function restoreAnswers(
  store: SessionStore,
  session: Session,
  answers: readonly StoredAnswer[] = bySession(store).get(session.id) ?? [],
): void {
  const cache = callCacheOf(session, store)
  for (const answer of answers) {
    cache.restore(answer.call, JSON.parse(answer.value) as unknown)
  }
}

function stored(session: Session, call: number, revision: number, value: unknown): StoredAnswer {
  return { session: session.id, call, revision, value: JSON.stringify(value ?? null) }
}

const grouped = new WeakMap<SessionStore, Map<string, StoredAnswer[]>>()

/** The restored answers by session id, oldest first (grouped once per dataspace). */
function bySession(store: SessionStore): Map<string, StoredAnswer[]> {
  let map = grouped.get(store)
  if (map === undefined) {
    map = new Map()
    for (const answer of store.restoredAnswers) {
      const list = map.get(answer.session)
      if (list === undefined) map.set(answer.session, [answer])
      else list.push(answer)
    }
    grouped.set(store, map)
  }
  return map
}
