import type { AnswerKey, StoredAnswer, StoredSession } from '../backends/index.js'
import type { Dataspace } from '../dataspace.js'
import type { AnswerHold } from '../engine/storage/answer-queue.js'

/**
 * Where the server keeps its sessions across a restart: beside the records, in the dataspace's
 * durable backend (`ds.storage`), with the answers of their write calls. The engine knows no
 * sessions: it only keeps alive, when it closes, the processes of the sessions stored here, and
 * restores them when it opens the store again. In memory every method is a no-op.
 */
export class SessionStore {
  readonly #ds: Dataspace

  constructor(ds: Dataspace) {
    this.#ds = ds
  }

  /** True when sessions outlive the server (a durable backend that this node writes). */
  get durable(): boolean {
    return this.#ds.storage !== undefined
  }

  /** The sessions the backend had when it was opened (the server adopts them). */
  get restoredSessions(): readonly StoredSession[] {
    return this.#ds.storage?.restoredSessions ?? []
  }

  /** Stored answers of those sessions' write calls, oldest first (the server restores them). */
  get restoredAnswers(): readonly StoredAnswer[] {
    return this.#ds.storage?.restoredAnswers ?? []
  }

  /** Stores a session, so that it and its processes can be resumed after a restart. */
  persist(session: StoredSession): void {
    this.#ds.storage?.putSession(session)
  }

  /** Forgets a stored session (it ended). */
  drop(id: string): void {
    this.#ds.storage?.deleteSession(id)
  }

  /** A place for the answer of the commit at `revision` in its batch (durable backends only). */
  holdAnswer(revision: number): AnswerHold | undefined {
    return this.#ds.storage?.answers.hold(revision)
  }

  /**
   * Takes over writers' waits for durability (src/server/ws/durable-answers.ts): see
   * `Engine.deferDurability`.
   */
  deferDurability(defer: ((revision: number, writer: boolean) => boolean) | undefined): void {
    this.#ds.deferDurability(defer)
  }

  /** Settles when `revision` is durable (as its `writer`: fails if that commit is refused). */
  durableAt(revision: number, writer: boolean): Promise<void> | undefined {
    return this.#ds.durable(revision, writer)
  }

  /** Forgets a stored answer. */
  dropAnswer(key: AnswerKey): void {
    this.#ds.storage?.answers.drop(key)
  }
}
