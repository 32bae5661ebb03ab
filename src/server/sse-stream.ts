import type { ServerResponse } from 'node:http'
import { nextBatch } from '../streams/index.js'
import type { Stream } from '../model/index.js'

/** Open SSE responses, so that `close()` can end them and stats can count them. */
export class SseRegistry {
  readonly #open = new Set<SseStream>()
  /** Watches closed because their client could not keep up (`reset` with `slow-consumer`). */
  slowConsumerResets = 0

  get size(): number {
    return this.#open.size
  }

  add(stream: SseStream): void {
    this.#open.add(stream)
  }

  delete(stream: SseStream): void {
    this.#open.delete(stream)
  }

  /** Events queued in the sources of every open stream, not yet written. */
  queued(): number {
    let total = 0
    for (const stream of this.#open) total += stream.queued()
    return total
  }

  /** Ends every stream (server shutdown). */
  closeAll(): void {
    for (const stream of [...this.#open]) stream.end()
  }
}

/**
 * One `text/event-stream` response. Writes never wait: when the socket already holds more than
 * `bufferLimit` unsent bytes, the client is too slow, and rather than buffer without bound the
 * stream ends with a final `reset` event (reason `slow-consumer`); the client reconnects with
 * `Last-Event-ID` and resumes, or gets `reset` and a fresh snapshot if that history is gone.
 * The check runs before each write, so one large event (a big snapshot) always gets through.
 */
export class SseStream {
  readonly #res: ServerResponse
  readonly #registry: SseRegistry
  readonly #bufferLimit: number
  readonly #heartbeat: NodeJS.Timeout
  readonly #onEnd: () => void
  readonly #queued: () => number
  readonly #onSlowConsumer: () => void
  #closed = false

  /**
   * @param queued how many events wait in the source (for the queue-depth metric)
   * @param onSlowConsumer runs when the buffer limit ends the stream (counts the limit hit)
   */
  constructor(
    res: ServerResponse,
    registry: SseRegistry,
    limits: { readonly sseBufferBytes: number; readonly sseHeartbeatMs: number },
    onEnd: () => void,
    queued: () => number = () => 0,
    onSlowConsumer: () => void = () => {},
  ) {
    this.#res = res
    this.#registry = registry
    this.#bufferLimit = limits.sseBufferBytes
    this.#onEnd = onEnd
    this.#queued = queued
    this.#onSlowConsumer = onSlowConsumer
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Reverse proxies (nginx) must not hold events back to fill a buffer.
      'x-accel-buffering': 'no',
    })
    res.flushHeaders()
    // A comment line: keeps idle connections open through proxies and detects dead peers.
    this.#heartbeat = setInterval(() => this.#write(': ping\n\n'), limits.sseHeartbeatMs)
    this.#heartbeat.unref()
    res.on('close', () => this.#finish())
    registry.add(this)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Events waiting in this stream's source. */
  queued(): number {
    return this.#closed ? 0 : this.#queued()
  }

  /** Writes one event; `id` becomes the client's `Last-Event-ID`. */
  send(type: string, data: unknown, id?: number): void {
    const idLine = id === undefined ? '' : `id: ${id}\n`
    this.#write(`event: ${type}\n${idLine}data: ${JSON.stringify(data)}\n\n`)
  }

  /** Ends the response (server shutdown or the source ended). */
  end(): void {
    if (this.#closed) return
    this.#res.end()
    this.#finish()
  }

  #write(frame: string): void {
    if (this.#closed) return
    if (this.#res.writableLength > this.#bufferLimit) {
      this.#registry.slowConsumerResets++
      this.#onSlowConsumer()
      this.#res.end(
        `event: reset\ndata: ${JSON.stringify({ type: 'reset', reason: 'slow-consumer' })}\n\n`,
      )
      this.#finish()
      return
    }
    this.#res.write(frame)
  }

  #finish(): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#heartbeat)
    this.#registry.delete(this)
    this.#onEnd()
  }
}

/** How many items `stream` holds queued, if it exposes a `length` (engine streams do). */
export function queuedLength(stream: unknown): number {
  const length = (stream as { readonly length?: unknown } | null)?.length
  return typeof length === 'number' ? length : 0
}

/**
 * Copies a stream's events to an SSE response until either ends. `idOf` gives an event's
 * revision, if resuming from it is safe. One commit may yield several events with the same
 * revision (an exit retracts many records at once), and resuming from that revision after only
 * the first would lose the rest. Batches never split a commit ({@link nextBatch}), so the last
 * event of each revision within a batch carries the `id`, and only it.
 */
export async function pipeToSse<T extends { readonly type: string }>(
  source: Stream<T>,
  sse: SseStream,
  idOf: (event: T) => number | undefined,
): Promise<void> {
  while (!sse.closed) {
    const batch = await nextBatch(source)
    if (batch === undefined) break
    for (let i = 0; i < batch.length; i++) {
      const event = batch[i] as T
      const id = idOf(event)
      const next = batch[i + 1]
      const last = next === undefined || idOf(next) !== id
      sse.send(event.type, event, last ? id : undefined)
    }
  }
  sse.end()
}
