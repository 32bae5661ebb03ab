import { WebSocket } from 'ws'
import { InvalidArgument, TooLarge } from '../errors/index.js'
import type { DataspaceError } from '../errors/index.js'
import { jsonCodec } from '../protocol/index.js'
import type { ClientMessage } from '../protocol/index.js'

/**
 * The client's outgoing messages: those queued in one tick go out as one frame, and a batch
 * over the server's frame limit as several. A message that alone is over the limit is never
 * sent (the server would close the connection, and the re-sent call close the next one): its
 * call fails with `TooLarge` through `refuse`.
 */
export class Outbox {
  #messages: ClientMessage[] = []
  #flushQueued = false
  /** The server's frame limit (from `welcome`): a bigger frame would close the connection (1009). */
  maxFrameBytes = Infinity
  readonly #socket: () => WebSocket | undefined
  readonly #refuse: (id: number, error: DataspaceError) => void

  constructor(
    socket: () => WebSocket | undefined,
    refuse: (id: number, error: DataspaceError) => void,
  ) {
    this.#socket = socket
    this.#refuse = refuse
  }

  push(message: ClientMessage): void {
    this.#messages.push(message)
    if (this.#flushQueued) return
    this.#flushQueued = true
    queueMicrotask(() => this.flush())
  }

  /** Drops what is queued (the socket it was meant for is gone). */
  clear(): void {
    this.#messages = []
  }

  flush(): void {
    this.#flushQueued = false
    const socket = this.#socket()
    const messages = this.#messages
    this.#messages = []
    if (messages.length === 0 || socket?.readyState !== WebSocket.OPEN) return
    const frame = jsonCodec.encode(messages)
    if (Buffer.byteLength(frame) <= this.maxFrameBytes) socket.send(frame)
    else this.#sendSplit(socket, messages)
  }

  #sendSplit(socket: WebSocket, messages: readonly ClientMessage[]): void {
    let batch: ClientMessage[] = []
    let size = 2 // the brackets of a batch
    const send = (): void => {
      if (batch.length > 0) socket.send(jsonCodec.encode(batch))
      batch = []
      size = 2
    }
    for (const message of messages) {
      const bytes = Buffer.byteLength(JSON.stringify(message)) + 1
      if (bytes + 2 > this.maxFrameBytes) {
        if (message.type === 'call') {
          const error = new TooLarge(
            `${message.op} is ${bytes} bytes as a frame; the server takes at most ${this.maxFrameBytes}`,
            { limit: 'maxFrameBytes' },
          )
          this.#refuse(message.id, error)
        }
        continue
      }
      if (size + bytes > this.maxFrameBytes) send()
      batch.push(message)
      size += bytes
    }
    send()
  }
}

/** `http://h:p` → `ws://h:p/v1/ws`; a `ws(s)://` URL with a path is used as given. */
export function wsUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new InvalidArgument(
      `unsupported URL scheme ${parsed.protocol}; use http(s):// or ws(s)://`,
    )
  }
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/v1/ws'
  return parsed.toString()
}

/** Results and events are frozen, as the engine's are: readers share them. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

/** The signal's reason as an Error (the reason `AbortSignal.abort()` gives is a DOMException). */
export function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason
  return reason instanceof Error
    ? reason
    : new DOMException('This operation was aborted', 'AbortError')
}
