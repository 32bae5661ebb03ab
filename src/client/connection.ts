import { WebSocket } from 'ws'
import type { RawData } from 'ws'
import {
  Closed,
  DataspaceError,
  InvalidArgument,
  Unauthorized,
  Unavailable,
} from '../errors/index.js'
import { errorFromWire } from '../protocol/index.js'
import { CLOSE_CODES, jsonCodec, OPERATIONS, PROTOCOL_VERSION, textOf } from '../protocol/index.js'
import type {
  ClientMessage,
  HelloMessage,
  OperationName,
  ServerMessage,
  WelcomeMessage,
} from '../protocol/index.js'
import { backoffDelay } from './backoff.js'
import { abortError, deepFreeze, Outbox, wsUrl } from './outbox.js'
import type { BackoffOptions } from './backoff.js'

type Args = Record<string, unknown>

/** A stream the connection keeps open across reconnects. */
export interface StreamSubscription {
  readonly op: OperationName
  /** The arguments for (re)opening: a watch resumes from the last revision it saw. */
  args(): Args
  onEvents(events: readonly unknown[]): void
  /** The server ended the stream, or refused to open it (`error`). */
  onEnd(reason: string, error?: DataspaceError): void
  /** The session was lost: the next open must not resume (a `reset` and a fresh open follow). */
  restart?(): void
}

interface PendingCall {
  readonly id: number
  readonly op: OperationName
  readonly args: () => Args
  readonly write: boolean
  /** Restore calls jump the queue that holds user calls while a session is being rebuilt. */
  readonly urgent: boolean
  /** The socket the call last went out on (it was lost with it when that socket closed). */
  sentOn: WebSocket | undefined
  resolve(value: unknown): void
  reject(error: Error): void
}

export interface ConnectionOptions {
  readonly token?: string | undefined
  readonly name?: string | undefined
  readonly ttl?: number | undefined
  readonly backoff?: BackoffOptions | undefined
  /** Gives up on the first connection after this long (default 10 s). */
  readonly connectTimeoutMs?: number | undefined
}

/** What the connection tells its owner (the client). */
export interface ConnectionEvents {
  /**
   * A session is attached: `resumed` is false after a loss (or the first time). The promise
   * holds back user calls until the client has restored what the session owned.
   */
  onSession(welcome: WelcomeMessage, first: boolean): Promise<void>
  onDisconnected(error: DataspaceError): void
  /** The connection is over for good (closed, or refused in a way retrying cannot fix). */
  onTerminated(error: DataspaceError): void
}

/**
 * One logical connection to a server, kept up across drops: it reconnects with backoff and
 * jitter, resumes its session, re-sends calls that got no answer (the server answers a re-sent
 * write from its cache, so writes take effect once) and re-opens streams. Calls made in the same
 * tick go out as one frame.
 */
export class Connection {
  /** The servers to try, in turn (the nodes of a cluster: docs/cluster.md, "Client failover"). */
  readonly #urls: readonly string[]
  /** The one connected to, or tried, now. */
  #url: string
  #urlIndex = 0
  /** How many URLs the first connection has tried. */
  #firstTries = 1
  readonly #options: ConnectionOptions
  readonly #events: ConnectionEvents
  #socket: WebSocket | undefined
  #session: WelcomeMessage['session'] | undefined
  #nextId = 1
  readonly #pending = new Map<number, PendingCall>()
  readonly #streams = new Map<StreamSubscription, number | undefined>()
  readonly #streamById = new Map<number, StreamSubscription>()
  readonly #outbox = new Outbox(
    () => this.#socket,
    (id, error) => this.#fail(id, error),
  )
  /** True between a welcome and the end of the client's restore: user calls wait. */
  #restoring = true
  #ready = false
  #closed = false
  #attempt = 0
  #watchdog: NodeJS.Timeout | undefined
  #lastHeard = 0
  #first = true
  /** The server run the last welcome came from. */
  #epoch: string | undefined

  constructor(
    urls: string | readonly string[],
    options: ConnectionOptions,
    events: ConnectionEvents,
  ) {
    const list = typeof urls === 'string' ? [urls] : urls
    if (list.length === 0) throw new InvalidArgument('connect needs at least one URL')
    this.#urls = list.map(wsUrl)
    this.#url = this.#urls[0]!
    this.#options = options
    this.#events = events
  }

  get session(): WelcomeMessage['session'] | undefined {
    return this.#session
  }

  get closed(): boolean {
    return this.#closed
  }

  /** True while a session is attached and calls go out (not while reconnecting). */
  get connected(): boolean {
    return this.#ready && !this.#closed
  }

  /** Opens the first connection; rejects when it cannot be made or is refused. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(() => {
        this.terminate(new Unavailable(`cannot connect to ${this.#url}: timed out`))
      }, this.#options.connectTimeoutMs ?? 10_000)
      this.#firstOutcome = (error) => {
        clearTimeout(timeout)
        if (error === undefined) resolve()
        else reject(error)
      }
      this.#open()
    })
  }

  #firstOutcome: ((error?: DataspaceError) => void) | undefined

  /**
   * Sends a call; resolves with its result. `write` (by default the operation table's) marks
   * calls that must not run twice: if the session is lost while one is unanswered it fails
   * with `Unavailable`.
   */
  call(
    op: OperationName,
    args: () => Args,
    options: { write?: boolean; urgent?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Closed('the client is closed'))
    const signal = options.signal
    if (signal?.aborted === true) return Promise.reject(abortError(signal))
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      const onAbort = (): void => {
        if (!this.#pending.delete(id)) return
        reject(abortError(signal))
      }
      const call: PendingCall = {
        id,
        op,
        args,
        write: options.write ?? OPERATIONS[op].write,
        urgent: options.urgent === true,
        sentOn: undefined,
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        reject: (error: Error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, call)
      if (this.#canSend(call)) this.#transmit(call)
    })
  }

  /** Opens a stream now (or at the next connection) and keeps it open until `unsubscribe`. */
  subscribe(sub: StreamSubscription): void {
    if (this.#closed) {
      sub.onEnd('closed', new Closed('the client is closed'))
      return
    }
    this.#streams.set(sub, undefined)
    if (this.#ready) this.#openStream(sub)
  }

  unsubscribe(sub: StreamSubscription): void {
    const id = this.#streams.get(sub)
    this.#streams.delete(sub)
    if (id === undefined) return
    this.#streamById.delete(id)
    this.#enqueue({ type: 'cancel', id })
  }

  /** Closes for good; pending calls fail with `error`. */
  terminate(error: DataspaceError = new Closed('the client is closed')): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#watchdog)
    this.#outbox.flush()
    const socket = this.#socket
    this.#socket = undefined
    if (socket !== undefined) {
      if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'client closed')
      else socket.terminate()
    }
    for (const call of this.#pending.values()) call.reject(error)
    this.#pending.clear()
    // Closed by the user (`client.close()`): streams end as the engine's do on `ds.close()`.
    const ended = error instanceof Closed
    for (const sub of this.#streams.keys()) {
      if (ended) sub.onEnd('dataspace-closed')
      else sub.onEnd('closed', error)
    }
    this.#streams.clear()
    this.#streamById.clear()
    this.#firstOutcome?.(error)
    this.#firstOutcome = undefined
    this.#events.onTerminated(error)
  }

  // Restore calls go out while the client rebuilds a session; user calls wait for the end of it.
  #canSend(call: PendingCall): boolean {
    return this.#socket !== undefined && (this.#ready || (call.urgent && this.#restoring))
  }

  #open(): void {
    // An attempt that gets no handshake in time moves on (to the next URL): a node whose host
    // vanished would otherwise hold it for the system's connect timeout, minutes.
    const handshakeTimeout = Math.max(500, Math.min(5_000, (this.#options.ttl ?? 10_000) / 3))
    const socket = new WebSocket(this.#url, { perMessageDeflate: false, handshakeTimeout })
    this.#socket = socket
    let opened = false
    socket.on('open', () => {
      opened = true
      const hello: HelloMessage = {
        type: 'hello',
        v: PROTOCOL_VERSION,
        codec: 'json',
        ...(this.#options.token === undefined ? {} : { token: this.#options.token }),
        ...(this.#options.name === undefined ? {} : { name: this.#options.name }),
        ...(this.#options.ttl === undefined ? {} : { ttl: this.#options.ttl }),
        ...(this.#session === undefined
          ? {}
          : { resume: { session: this.#session.id, resumeToken: this.#session.resumeToken } }),
      }
      socket.send(jsonCodec.encode([hello]))
    })
    socket.on('message', (data: RawData) => {
      this.#lastHeard = Date.now()
      let messages: unknown[]
      try {
        messages = jsonCodec.decode(textOf(data))
      } catch {
        return // a server never sends bad JSON; nothing to answer
      }
      for (const message of messages) this.#onMessage(message as ServerMessage)
    })
    socket.on('ping', () => {
      this.#lastHeard = Date.now()
    })
    socket.on('error', () => {
      // 'close' follows; the error's text is in the close handling.
    })
    socket.on('close', (code: number, reason: Buffer) => {
      if (this.#socket !== socket) return
      this.#onClose(code, reason.toString(), opened)
    })
  }

  #onMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.#onWelcome(message).catch((error: unknown) => this.#welcomeFailed(message, error))
        return
      case 'result': {
        const call = this.#pending.get(message.id)
        if (call !== undefined) {
          this.#pending.delete(message.id)
          call.resolve(deepFreeze(message.value))
        }
        return
      }
      case 'error': {
        if (message.id === undefined) return
        this.#fail(message.id, errorFromWire(message.error))
        return
      }
      case 'events':
        this.#streamById.get(message.id)?.onEvents(deepFreeze(message.events))
        return
      case 'end': {
        const sub = this.#streamById.get(message.id)
        if (sub === undefined) return
        this.#streamById.delete(message.id)
        this.#streams.delete(sub)
        sub.onEnd(message.reason)
        return
      }
      case 'goodbye':
        // The server is going away; the close that follows starts the reconnect loop.
        return
    }
  }

  async #onWelcome(welcome: WelcomeMessage): Promise<void> {
    const resumed = welcome.resumed
    // A session can survive a server restart (durable store); the watch history cannot.
    const restarted = this.#epoch !== undefined && welcome.epoch !== this.#epoch
    this.#epoch = welcome.epoch
    this.#attempt = 0
    this.#session = welcome.session
    this.#outbox.maxFrameBytes = welcome.maxFrameBytes ?? Infinity
    this.#startWatchdog(welcome.pingIntervalMs)
    const first = this.#first
    this.#first = false
    if (!resumed) {
      // Writes sent on the lost session have an unknown outcome: they may have happened and
      // been retracted with the session, or never happened. Reads and unsent calls go again.
      for (const call of [...this.#pending.values()]) {
        if (call.sentOn !== undefined && call.write) {
          this.#pending.delete(call.id)
          call.reject(
            new Unavailable(
              `the session was lost before ${call.op} was answered; it may or may not have happened`,
            ),
          )
        }
      }
    }
    this.#restoring = true
    this.#ready = false
    try {
      await this.#events.onSession(welcome, first)
    } finally {
      this.#restoring = false
    }
    if (this.#closed || this.#session !== welcome.session) return
    this.#ready = true
    for (const call of this.#pending.values()) {
      if (call.sentOn !== this.#socket) this.#transmit(call)
    }
    for (const sub of this.#streams.keys()) {
      // A lost session may mean a restarted server with another history: never resume from a
      // revision of the old one (it would skip or misapply events); start over instead.
      if ((!resumed || restarted) && !first) sub.restart?.()
      this.#openStream(sub)
    }
    this.#firstOutcome?.()
    this.#firstOutcome = undefined
  }

  /**
   * Rebuilding after a welcome failed (a restore call refused, say). A first connection fails
   * `connect` with it; later, the socket is dropped so the reconnect loop tries again, rather
   * than leaving the client half-restored with user calls held back forever.
   */
  #welcomeFailed(welcome: WelcomeMessage, error: unknown): void {
    if (this.#closed || this.#session !== welcome.session) return
    if (this.#firstOutcome !== undefined) {
      this.terminate(
        error instanceof DataspaceError
          ? error
          : new Unavailable(`setting up the session failed: ${String(error)}`, { cause: error }),
      )
      return
    }
    this.#socket?.terminate()
  }

  #openStream(sub: StreamSubscription): void {
    const id = this.#nextId++
    this.#streams.set(sub, id)
    this.#streamById.set(id, sub)
    this.#enqueue({ type: 'call', id, op: sub.op, args: sub.args() })
  }

  #transmit(call: PendingCall): void {
    call.sentOn = this.#socket
    this.#enqueue({ type: 'call', id: call.id, op: call.op, args: call.args() })
  }

  #enqueue(message: ClientMessage): void {
    this.#outbox.push(message)
  }

  /** Fails call `id`: a pending call rejects, a stream being opened ends with the error. */
  #fail(id: number, error: DataspaceError): void {
    const call = this.#pending.get(id)
    if (call !== undefined) {
      this.#pending.delete(id)
      call.reject(error)
      return
    }
    const sub = this.#streamById.get(id)
    if (sub === undefined) return
    this.#streamById.delete(id)
    this.#streams.delete(sub)
    sub.onEnd('error', error)
  }

  #onClose(code: number, reason: string, opened: boolean): void {
    clearInterval(this.#watchdog)
    this.#socket = undefined
    this.#ready = false
    this.#outbox.clear()
    for (const sub of this.#streams.keys()) this.#streams.set(sub, undefined)
    this.#streamById.clear()
    if (this.#closed) return
    if (code === CLOSE_CODES.unauthorized) {
      this.terminate(new Unauthorized(reason || 'unauthorized'))
      return
    }
    if (code === CLOSE_CODES.badHello || code === CLOSE_CODES.sessionTakenOver) {
      this.terminate(new InvalidArgument(reason || `connection refused (${code})`))
      return
    }
    if (code === CLOSE_CODES.sessionEnded) this.#session = undefined
    const error = new Unavailable(
      opened
        ? `connection lost (${code}${reason ? `: ${reason}` : ''})`
        : `cannot connect to ${this.#url}`,
    )
    // Each attempt goes to the next URL: a node that died is left for the next one.
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length
    this.#url = this.#urls[this.#urlIndex]!
    if (this.#first) {
      // A server that cannot take it now (unreachable, shutting down, its store out of reach):
      // the next URL is tried before `connect` gives up.
      const next = !opened || code === CLOSE_CODES.goingAway || code === CLOSE_CODES.tryAgainLater
      if (next && this.#firstTries < this.#urls.length) {
        this.#firstTries++
        this.#open()
        return
      }
      this.terminate(error)
      return
    }
    // One `disconnected` per outage: the attempts that fail while reconnecting are not news.
    if (this.#attempt === 0) this.#events.onDisconnected(error)
    const delay = backoffDelay(this.#attempt++, this.#options.backoff)
    setTimeout(() => {
      if (!this.#closed) this.#open()
    }, delay)
  }

  /** Reconnects when the server has been silent for two ping intervals (a half-open TCP). */
  #startWatchdog(pingIntervalMs: number): void {
    clearInterval(this.#watchdog)
    this.#lastHeard = Date.now()
    const limit = 2 * pingIntervalMs + 500
    this.#watchdog = setInterval(() => {
      if (Date.now() - this.#lastHeard > limit) this.#socket?.terminate()
    }, pingIntervalMs)
    this.#watchdog.unref()
  }
}
