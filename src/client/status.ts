import { QueuedStream } from '../streams/index.js'
import type { DataspaceError } from '../errors/index.js'

/** What happens to a client's connection and session, as `client.status()` reports it. */
export type ClientStatus =
  | { readonly type: 'connected'; readonly session: string; readonly pid: string }
  | { readonly type: 'disconnected'; readonly error: DataspaceError }
  /** The connection is back and the session survived: everything owned is still there. */
  | { readonly type: 'reconnected'; readonly session: string; readonly pid: string }
  /**
   * The lease ran out while disconnected: the server retracted everything the session owned.
   * The client opened a new session and re-asserted, re-joined and re-registered what it knew
   * it owned (`restored` items); each item it could not restore is a `conflict`.
   */
  | {
      readonly type: 'session-lost'
      readonly session: string
      readonly previousPid: string
      readonly pid: string
      readonly restored: number
    }
  | {
      readonly type: 'conflict'
      /** What could not be restored: `record kind/id`, `group scope/name`, `name x`, `kv bucket/key`. */
      readonly what: string
      readonly error: DataspaceError
    }

/** Bound of each status() subscriber's queue: the oldest events go first when it is full. */
const STATUS_BUFFER = 1_000

/** Fans status events out to every `status()` iterator opened since. */
export class StatusHub {
  readonly #subscribers = new Set<QueuedStream<ClientStatus>>()

  subscribe(): QueuedStream<ClientStatus> {
    const stream: QueuedStream<ClientStatus> = new QueuedStream(() =>
      this.#subscribers.delete(stream),
    )
    this.#subscribers.add(stream)
    return stream
  }

  emit(status: ClientStatus): void {
    for (const stream of this.#subscribers) {
      if (stream.length >= STATUS_BUFFER) stream.clear()
      stream.push(status)
    }
  }

  endAll(): void {
    for (const stream of [...this.#subscribers]) stream.end('closed')
  }
}
