import type { ServerResponse } from 'node:http'
import type { Stream } from '../engine/index.js'

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
  #closed = false

  constructor(
    res: ServerResponse,
    registry: SseRegistry,
    limits: { readonly sseBufferBytes: number; readonly sseHeartbeatMs: number },
    onEnd: () => void,
  ) {
    this.#res = res
    this.#registry = registry
    this.#bufferLimit = limits.sseBufferBytes
    this.#onEnd = onEnd
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

const IDLE = Symbol('idle')

/**
 * Copies a stream's events to an SSE response until either ends. `idOf` gives an event's
 * revision, if resuming from it is safe. One commit may yield several events with the same
 * revision (an exit retracts many records at once), and resuming from that revision after only
 * the first would lose the rest. So an event's id is held back until the next event shows a
 * new revision, or the stream goes idle (a commit's events are queued together, so they arrive
 * within one turn): only the last event of each revision carries an `id`.
 */
export async function pipeToSse<T extends { readonly type: string }>(
  source: Stream<T>,
  sse: SseStream,
  idOf: (event: T) => number | undefined,
): Promise<void> {
  let pending: Promise<IteratorResult<T, undefined>> | undefined
  let held: T | undefined
  while (!sse.closed) {
    pending ??= source.next()
    const result =
      held === undefined
        ? await pending
        : await Promise.race([pending, new Promise<typeof IDLE>((r) => setImmediate(r, IDLE))])
    if (result === IDLE) {
      if (held !== undefined) sse.send(held.type, held, idOf(held))
      held = undefined
      continue
    }
    pending = undefined
    if (result.done === true) break
    const event = result.value
    const id = idOf(event)
    if (held !== undefined) {
      const heldId = idOf(held)
      sse.send(held.type, held, heldId === id ? undefined : heldId)
      held = undefined
    }
    if (id === undefined) sse.send(event.type, event)
    else held = event
  }
  if (held !== undefined) sse.send(held.type, held, idOf(held))
  sse.end()
}
