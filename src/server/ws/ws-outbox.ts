import type { ServerMessage } from '../../protocol/index.js'

/** The part of a `ws` socket the outbox writes to. */
export interface OutboxSocket {
  readonly bufferedAmount: number
  send(frame: string): void
}

/** What the outbox asks its connection for. */
export interface OutboxHooks {
  /**
   * `message` could not be encoded (`error` says why): answer what to send instead (an error for
   * that call, the end of that stream), or `undefined` to give up on the connection.
   */
  unencodable(message: ServerMessage, error: unknown): ServerMessage | undefined
  /** The connection cannot go on (an unencodable message it has no stand-in for). */
  fail(error: unknown): void
}

/**
 * The messages of one turn, encoded as they come and sent as few frames at the turn's end: a
 * pipelined burst of calls costs a few writes, not one per answer. Each message is encoded on
 * its own, so one that cannot be encoded (too large for a string) fails only its call or
 * stream, never the process; frames hold at most `maxFrameBytes` (a single larger message goes
 * alone); and {@link pending} counts the encoded bytes waiting, which the connection adds to
 * the socket's buffer against `wsMaxBufferBytes`.
 */
export class WsOutbox {
  readonly #socket: OutboxSocket
  readonly #maxFrameBytes: number
  readonly #hooks: OutboxHooks
  #parts: { readonly text: string; readonly bytes: number }[] = []
  #pending = 0

  constructor(socket: OutboxSocket, maxFrameBytes: number, hooks: OutboxHooks) {
    this.#socket = socket
    this.#maxFrameBytes = maxFrameBytes
    this.#hooks = hooks
  }

  /** Encoded bytes waiting for the end of the turn. */
  get pending(): number {
    return this.#pending
  }

  /** Unsent bytes: waiting here and in the socket's own buffer. */
  get unsent(): number {
    return this.#pending + this.#socket.bufferedAmount
  }

  /** Encodes and queues `messages`; schedules the flush on the first of a turn. */
  push(messages: readonly ServerMessage[]): void {
    const first = this.#parts.length === 0
    for (const message of messages) {
      const text = this.#encode(message)
      if (text === undefined) return
      const bytes = Buffer.byteLength(text)
      this.#parts.push({ text, bytes })
      this.#pending += bytes
    }
    if (first && this.#parts.length > 0) setImmediate(() => this.flush())
  }

  /** Sends what is queued, as frames of at most `maxFrameBytes` (JSON arrays of messages). */
  flush(): void {
    const parts = this.#parts
    if (parts.length === 0) return
    this.#parts = []
    this.#pending = 0
    let frame: string[] = []
    let size = 0
    const send = (): void => {
      if (frame.length === 0) return
      this.#socket.send(frame.length === 1 ? (frame[0] as string) : `[${frame.join(',')}]`)
      frame = []
      size = 0
    }
    for (const { text, bytes } of parts) {
      // Brackets and a comma per message: the frame's size as sent.
      if (size + bytes + 2 > this.#maxFrameBytes) send()
      frame.push(text)
      size += bytes + 1
    }
    send()
  }

  #encode(message: ServerMessage): string | undefined {
    try {
      return JSON.stringify(message)
    } catch (error) {
      const instead = this.#hooks.unencodable(message, error)
      if (instead !== undefined) {
        try {
          return JSON.stringify(instead)
        } catch (again) {
          this.#hooks.fail(again)
          return undefined
        }
      }
      this.#hooks.fail(error)
      return undefined
    }
  }
}
