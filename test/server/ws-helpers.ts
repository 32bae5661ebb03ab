import { WebSocket } from 'ws'
import type { RawData } from 'ws'

/** A message the server sent, loosely typed: tests read the fields they expect. */
export interface Received {
  readonly type: string
  readonly id?: number
  readonly value?: unknown
  readonly error?: { readonly code: string; readonly message: string }
  readonly session?: { readonly id: string; readonly pid: string; readonly resumeToken: string }
  readonly resumed?: boolean
  readonly events?: readonly unknown[]
  readonly maxFrameBytes?: number
}

/**
 * A raw WebSocket to `/v1/ws` that records every message and the close code. `next(pred)`
 * waits for the first recorded message matching `pred` that it has not returned yet.
 */
export class RawWs {
  readonly socket: WebSocket
  readonly received: Received[] = []
  readonly #taken = new Set<number>()
  closeCode: number | undefined
  closeReason = ''
  /** Status of a refused upgrade (e.g. 401), if the server refused it. */
  refusedStatus: number | undefined
  readonly opened: Promise<void>
  readonly closed: Promise<number>

  constructor(url: string, headers: Record<string, string> = {}) {
    this.socket = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', {
      headers,
      perMessageDeflate: false,
    })
    this.socket.on('message', (data: RawData) => {
      const text = Buffer.isBuffer(data)
        ? data.toString()
        : Buffer.concat(data as Buffer[]).toString()
      const parsed = JSON.parse(text) as Received | Received[]
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) this.received.push(m)
    })
    this.socket.on('unexpected-response', (_req, res) => {
      this.refusedStatus = res.statusCode
      res.resume()
      this.socket.terminate()
    })
    this.socket.on('error', () => {})
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve())
      this.socket.once('close', () => reject(new Error('closed before open')))
    })
    this.opened.catch(() => {})
    this.closed = new Promise((resolve) =>
      this.socket.once('close', (code: number, reason: Buffer) => {
        this.closeCode = code
        this.closeReason = reason.toString()
        resolve(code)
      }),
    )
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN
  }

  /** Sends `messages` as one JSON frame (an array), or a raw string / buffer as is. */
  send(messages: unknown, binary = false): void {
    if (typeof messages === 'string' || Buffer.isBuffer(messages)) {
      this.socket.send(messages, { binary })
    } else this.socket.send(JSON.stringify(messages))
  }

  async next(pred: (m: Received) => boolean, ms = 2_000, what = 'a message'): Promise<Received> {
    const deadline = Date.now() + ms
    for (;;) {
      const i = this.received.findIndex((m, j) => !this.#taken.has(j) && pred(m))
      if (i !== -1) {
        this.#taken.add(i)
        return this.received[i] as Received
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(this.received)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Sends `hello` and waits for the welcome. */
  async hello(fields: Record<string, unknown> = {}): Promise<Received> {
    await this.opened
    this.send([{ type: 'hello', v: 1, name: 'raw', ...fields }])
    return this.next((m) => m.type === 'welcome' || m.type === 'error', 2_000, 'welcome')
  }

  /** One call → its result or error. */
  async call(id: number, op: string, args?: unknown): Promise<Received> {
    this.send([{ type: 'call', id, op, ...(args === undefined ? {} : { args }) }])
    return this.next((m) => m.id === id && (m.type === 'result' || m.type === 'error'))
  }

  /** Waits for the close, failing after `ms`. */
  async closedWithin(ms = 2_000): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms)
    })
    try {
      return await Promise.race([this.closed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  close(): void {
    this.socket.terminate()
  }
}
