import type { WebSocket } from 'ws'
import { nextBatch } from '../../streams/index.js'
import type { Stream } from '../../model/index.js'
import { DataspaceError, InvalidArgument, TooLarge, Unauthorized } from '../../errors/index.js'
import {
  CLOSE_CODES,
  jsonCodec,
  operation,
  PROTOCOL_VERSION,
  textOf,
} from '../../protocol/index.js'
import type { HelloMessage, ServerMessage, WelcomeMessage } from '../../protocol/index.js'
import type { Principal } from '../auth.js'
import { callerKey, sessionKey } from '../limits.js'
import { reportError } from '../report.js'
import { checkSessionOwner } from '../request-context.js'
import { openSession } from '../session-quota.js'
import type { ServerState } from '../request-context.js'
import type { Session } from '../session-table.js'
import { queuedLength } from '../sse-stream.js'
import { toWireError } from '../../protocol/index.js'
import { answerOnce, restoreAnswers } from './durable-answers.js'
import { prepareCall } from './dispatch.js'
import { WsOutbox } from './ws-outbox.js'

/** Sessions attached to a connection now: a resume elsewhere takes the session over. */
const attached = new WeakMap<Session, WsConnection>()

/** How often a paused watch re-checks the send buffer, in ms. */
const DRAIN_POLL_MS = 10
/** Messages a connection holds while its hello is answered asynchronously (see `#early`). */
const MAX_EARLY_MESSAGES = 1_024

/**
 * One WebSocket connection: a `hello` that opens or resumes a session, then calls answered by
 * id, and streams pumped as `events` frames (`docs/protocol.md`). Every inbound frame and every
 * pong renews the session's lease; when the connection drops, the lease runs on, so a client
 * that reconnects in time resumes the session with all it owned.
 */
export class WsConnection {
  readonly #socket: WebSocket
  readonly #state: ServerState
  #principal: Principal | undefined
  #session: Session | undefined
  readonly #streams = new Map<number, Stream<unknown>>()
  #closed = false
  /** Messages of this turn, encoded, sent as few frames at its end. */
  readonly #outbox: WsOutbox
  #awaitingPong = false
  #pinger: NodeJS.Timeout | undefined
  /** Whether a token is required: auth is on and no Authorization header was accepted. */
  readonly #needsToken: boolean
  readonly #onClose: (conn: WsConnection) => void
  /** The client's address: sessions and failed authentications count against it. */
  readonly #address: string | undefined
  /** Closes the connection if no `hello` comes within `wsHelloTimeoutMs`. */
  #helloTimer: NodeJS.Timeout | undefined
  /**
   * Messages that came while the hello was being answered (a cluster node taking the session
   * over from another node asks the database first): handled, in order, after the welcome.
   */
  #early: unknown[] | undefined

  constructor(
    socket: WebSocket,
    state: ServerState,
    principal: Principal | undefined,
    address: string | undefined,
    onClose: (conn: WsConnection) => void,
  ) {
    this.#socket = socket
    this.#state = state
    this.#principal = principal
    this.#address = address
    this.#needsToken = state.options.auth !== undefined && principal === undefined
    this.#onClose = onClose
    // A socket that never says hello would otherwise hold its file descriptor for ever.
    const helloTimeout = state.options.limits.wsHelloTimeoutMs
    this.#helloTimer = setTimeout(() => {
      if (this.#session !== undefined) return
      state.guard.hit('wsHelloTimeoutMs', { who: `client ${address ?? 'unknown'}` })
      this.close(
        CLOSE_CODES.badHello,
        `no hello within limits.wsHelloTimeoutMs (${helloTimeout} ms)`,
      )
    }, helloTimeout)
    this.#helloTimer.unref()
    this.#outbox = new WsOutbox(
      {
        get bufferedAmount() {
          return socket.bufferedAmount
        },
        send: (frame) => {
          if (socket.readyState === socket.OPEN) socket.send(frame)
        },
      },
      state.options.limits.maxFrameBytes,
      {
        unencodable: (message, error) => this.#unencodable(message, error),
        fail: (error) => {
          state.options.onInternalError(error)
          this.close(CLOSE_CODES.internalError, 'a message could not be encoded')
        },
      },
    )
    socket.on('message', (data, isBinary) => this.#onFrame(data, isBinary))
    socket.on('pong', () => {
      this.#awaitingPong = false
      this.#renew()
    })
    socket.on('close', () => this.#teardown())
    socket.on('error', () => this.#teardown())
  }

  /** Tells the client the server is going away, then closes (graceful shutdown). */
  goodbye(reason: string): void {
    this.#send([{ type: 'goodbye', reason }])
    this.close(CLOSE_CODES.goingAway, reason)
  }

  close(code: number, reason: string): void {
    this.#flush()
    if (this.#socket.readyState === this.#socket.OPEN) this.#socket.close(code, reason)
    this.#teardown()
  }

  /** Events queued in this connection's streams, not yet sent (the queue-depth metric). */
  queued(): number {
    let total = 0
    for (const stream of this.#streams.values()) total += queuedLength(stream)
    return total
  }

  #onFrame(data: unknown, isBinary: boolean): void {
    if (this.#closed) return
    if (isBinary) {
      this.#sendError(
        undefined,
        new InvalidArgument('binary frames need a binary codec; hello.codec is "json"'),
      )
      return
    }
    let messages: unknown[]
    try {
      messages = jsonCodec.decode(textOf(data))
    } catch {
      this.#sendError(undefined, new InvalidArgument('frame is not valid JSON'))
      return
    }
    this.#renew()
    for (const message of messages) {
      if (this.#closed) return
      this.#onMessage(message)
    }
  }

  #onMessage(message: unknown): void {
    const type = (message as { type?: unknown } | null)?.type
    if (this.#early !== undefined) {
      // A client pipelines at most a frame's worth before the welcome; more is not a client.
      if (this.#early.length >= MAX_EARLY_MESSAGES) {
        this.close(CLOSE_CODES.badHello, 'too many messages before the welcome')
        return
      }
      this.#early.push(message)
      return
    }
    if (this.#session === undefined) {
      if (type !== 'hello') {
        this.close(CLOSE_CODES.badHello, 'the first message must be { type: "hello", v: 1 }')
        return
      }
      this.#hello(message as HelloMessage)
      return
    }
    const id = (message as { id?: unknown } | null)?.id
    if (type === 'call' || type === 'cancel') {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        this.#sendError(
          undefined,
          new InvalidArgument(`a ${type} needs "id": a non-negative integer`),
        )
        return
      }
      if (type === 'call') this.#call(id, message as Record<string, unknown>)
      else this.#cancel(id)
      return
    }
    const what = type === 'hello' ? 'a second hello' : `message type ${JSON.stringify(type)}`
    this.#sendError(
      typeof id === 'number' ? id : undefined,
      new InvalidArgument(`unexpected ${what}`),
    )
  }

  #hello(hello: HelloMessage): void {
    try {
      if (hello.v !== PROTOCOL_VERSION) {
        this.close(
          CLOSE_CODES.badHello,
          `unsupported protocol version ${String(hello.v)}; this server speaks ${PROTOCOL_VERSION}`,
        )
        return
      }
      if (hello.codec !== undefined && hello.codec !== 'json') {
        this.close(CLOSE_CODES.badHello, `unsupported codec ${String(hello.codec)}; use "json"`)
        return
      }
      if (this.#needsToken) {
        const auth = this.#state.options.auth
        if (typeof hello.token !== 'string' || auth === undefined) {
          throw new Unauthorized('missing token: pass hello.token or an Authorization header')
        }
        this.#principal = this.#state.guard.authenticate(
          auth,
          `Bearer ${hello.token}`,
          this.#address,
        )
      }
      if (!this.#state.accepting) {
        this.close(CLOSE_CODES.goingAway, 'server is shutting down')
        return
      }
      const opened = this.#openSession(hello)
      if (opened instanceof Promise) {
        this.#early = []
        opened.then(
          (done) => {
            const early = this.#early ?? []
            this.#early = undefined
            if (this.#closed) {
              // Gone while it was being taken over: the session stays (its lease runs).
              return
            }
            this.#welcome(done.session, done.resumed)
            for (const message of early) if (!this.#closed) this.#onMessage(message)
          },
          (error: unknown) => {
            this.#early = undefined
            this.#helloFailed(error)
          },
        )
        return
      }
      this.#welcome(opened.session, opened.resumed)
    } catch (error) {
      this.#helloFailed(error)
    }
  }

  /** Attaches `session` and tells the client so. */
  #welcome(session: Session, resumed: boolean): void {
    try {
      this.#attach(session)
      const welcome: WelcomeMessage = {
        type: 'welcome',
        v: PROTOCOL_VERSION,
        node: this.#state.ds.node,
        revision: this.#state.ds.revision,
        session: {
          id: session.id,
          pid: session.process.id,
          resumeToken: session.resumeToken,
          ttl: session.ttl,
        },
        resumed,
        epoch: this.#state.epoch,
        pingIntervalMs: this.#pingInterval(session),
        maxFrameBytes: this.#state.options.limits.maxFrameBytes,
      }
      this.#send([welcome])
    } catch (error) {
      this.#helloFailed(error)
    }
  }

  #helloFailed(error: unknown): void {
    this.#sendError(undefined, error)
    const code =
      error instanceof DataspaceError && error.code === 'Unauthorized'
        ? CLOSE_CODES.unauthorized
        : // A cluster node that could not reach the store to take the session over: the
          // client tries again (another node, or this one later), not gives up.
          error instanceof DataspaceError && error.code === 'Unavailable'
          ? CLOSE_CODES.tryAgainLater
          : CLOSE_CODES.badHello
    this.close(code, error instanceof Error ? error.message.slice(0, 120) : 'bad hello')
  }

  /**
   * Resumes `hello.resume` if that session is alive, else opens a new one. On a cluster node a
   * session that another node held is taken over from the store first (asynchronously).
   */
  #openSession(
    hello: HelloMessage,
  ): { session: Session; resumed: boolean } | Promise<{ session: Session; resumed: boolean }> {
    const { sessions } = this.#state
    const resume = hello.resume
    if (resume !== undefined) {
      if (typeof resume.session !== 'string' || typeof resume.resumeToken !== 'string') {
        throw new InvalidArgument('hello.resume needs "session" and "resumeToken" strings')
      }
      // A cluster node asks the store even for a session it serves: another node may have
      // taken it over since (the store's answer moves it back here, or it is gone).
      if (this.#state.ds.clustered) return this.#takeOver(hello, resume.session, resume.resumeToken)
      let live: Session | undefined
      try {
        live = sessions.find(resume.session)
      } catch {
        live = undefined // gone: the lease ran out; a new session follows
      }
      if (live !== undefined) {
        checkSessionOwner(this.#state, live, this.#principal)
        return { session: sessions.resume(resume.session, resume.resumeToken), resumed: true }
      }
    }
    const session = openSession(
      this.#state,
      hello.name ?? 'client',
      hello.ttl,
      this.#principal,
      this.#address,
    )
    return { session, resumed: false }
  }

  /** A session another cluster node held: taken over if the store has it live, else a new one. */
  async #takeOver(
    hello: HelloMessage,
    id: string,
    resumeToken: string,
  ): Promise<{ session: Session; resumed: boolean }> {
    const { sessions } = this.#state
    const principal = this.#principal
    // A session taken over counts against its caller's quotas here, as one opened here does;
    // one this node serves already is counted already (a node at its cap still resumes it).
    let served: boolean
    try {
      served = sessions.find(id).process.alive
    } catch {
      served = false // not here, or ended
    }
    const release = served
      ? () => {}
      : this.#state.guard.openSession(callerKey(principal?.name, this.#address), sessions.size)
    let taken: Awaited<ReturnType<typeof sessions.takeOver>>
    try {
      taken = await sessions.takeOver(id, resumeToken, principal?.name)
    } catch (error) {
      release()
      throw error
    }
    if (taken === undefined || !taken.adopted) release()
    if (taken !== undefined) {
      if (taken.adopted) taken.session.process.exited.then(release, release)
      if (principal !== undefined) this.#state.sessionOwners.set(taken.session, principal)
      restoreAnswers(sessions.store, taken.session, taken.answers)
      return { session: taken.session, resumed: true }
    }
    const session = openSession(
      this.#state,
      hello.name ?? 'client',
      hello.ttl,
      principal,
      this.#address,
    )
    return { session, resumed: false }
  }

  #attach(session: Session): void {
    attached
      .get(session)
      ?.close(CLOSE_CODES.sessionTakenOver, 'session resumed on another connection')
    attached.set(session, this)
    this.#session = session
    clearTimeout(this.#helloTimer)
    session.process.exited
      .then(() => {
        // After this turn, so the answer to the call that ended the session goes out first.
        setImmediate(() => {
          if (this.#session === session) this.close(CLOSE_CODES.sessionEnded, 'session ended')
        })
      })
      .catch((error: unknown) => this.#fail(error))
    const interval = this.#pingInterval(session)
    this.#pinger = setInterval(() => {
      // No pong since the last ping: the peer is gone without a FIN (a dead host, a cut cable).
      if (this.#awaitingPong) {
        this.#socket.terminate()
        this.#teardown()
        return
      }
      this.#awaitingPong = true
      this.#socket.ping()
    }, interval)
    this.#pinger.unref()
  }

  // Pings well inside the lease, so an idle but healthy connection keeps its session alive.
  #pingInterval(session: Session): number {
    return Math.max(
      50,
      Math.min(this.#state.options.limits.wsPingIntervalMs, Math.floor(session.ttl / 3)),
    )
  }

  #renew(): void {
    const session = this.#session
    if (session === undefined || !session.process.alive) return
    try {
      this.#state.sessions.touch(session.id)
    } catch {
      // Ended meanwhile; the exit handler closes the connection.
    }
  }

  #call(id: number, message: Record<string, unknown>): void {
    const session = this.#session as Session
    const op = typeof message.op === 'string' ? message.op : ''
    const spec = operation(op)
    const started = process.hrtime.bigint()
    const done = (outcome: string): void => {
      this.#state.metrics.operation('', op, outcome)
      if (spec !== undefined && !spec.stream && spec.write) {
        this.#state.metrics.commitLatency(Number(process.hrtime.bigint() - started) / 1e9)
      }
    }
    try {
      this.#state.guard.takeCall(sessionKey(session))
      if (spec !== undefined && this.#streams.has(id)) {
        throw new InvalidArgument(`call id ${id} is an open stream`)
      }
      const call = prepareCall(this.#state, op, spec, message.args, session, this.#principal)
      if (call.stream) {
        this.#openStream(id, session, call.open)
        done('ok')
        return
      }
      // Inside the cached run: a retried write that already succeeded is not refused.
      const answer = call.write
        ? answerOnce(this.#state.sessions.store, session, id, call.run)
        : call.run()
      answer.then(
        (value) => {
          done('ok')
          this.#send([{ type: 'result', id, value: value ?? null }])
        },
        (error: unknown) => {
          done(outcomeOf(error))
          this.#sendError(id, error)
        },
      )
    } catch (error) {
      done(outcomeOf(error))
      this.#sendError(id, error)
    }
  }

  /**
   * Opens a stream and pumps it. A method of its own so that what lives as long as the stream
   * (the callbacks on `closed` and the pump) closes over nothing of the call that opened it:
   * closures of one scope share one context, and an idle watch would keep the whole call alive.
   */
  #openStream(id: number, session: Session, open: () => Stream<unknown>): void {
    const release = this.#state.guard.openStream(sessionKey(session))
    let stream: Stream<unknown>
    try {
      stream = open()
    } catch (error) {
      release()
      throw error
    }
    stream.closed.finally(release).catch((error: unknown) => this.#fail(error))
    this.#streams.set(id, stream)
    this.#send([{ type: 'result', id, value: null }])
    this.#pump(id, stream).catch((error: unknown) => this.#fail(error))
  }

  #cancel(id: number): void {
    const stream = this.#streams.get(id)
    if (stream === undefined) return // an answered call, or a unary one: nothing to stop
    this.#streams.delete(id)
    stream.close()
  }

  /**
   * Forwards a stream's batches. While the socket's send buffer is over the limit the pump stops
   * pulling, so events wait in the engine's bounded queue, which resets and resnapshots the
   * watch if the client stays too slow: a slow watch costs the server at most its queue.
   */
  async #pump(id: number, stream: Stream<unknown>): Promise<void> {
    const limit = this.#state.options.limits.wsSendBufferBytes
    for (;;) {
      if (!this.#closed && this.#socket.bufferedAmount > limit) {
        this.#state.metrics.streamPaused(1)
        while (!this.#closed && this.#socket.bufferedAmount > limit) {
          await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
        }
        this.#state.metrics.streamPaused(-1)
      }
      const batch = await nextBatch(stream)
      if (this.#closed || this.#streams.get(id) !== stream) return
      if (batch === undefined) {
        this.#streams.delete(id)
        this.#send([{ type: 'end', id, reason: closeReasonOf(await stream.closed) }])
        return
      }
      this.#send([{ type: 'events', id, events: batch }])
    }
  }

  /**
   * A failure of the connection's own machinery (a stream pump, an exit handler), not of one
   * call: it is logged as an internal error and costs this connection, never the process.
   */
  #fail(error: unknown): void {
    this.#state.options.onInternalError(error)
    this.close(CLOSE_CODES.internalError, 'internal error')
  }

  #sendError(id: number | undefined, error: unknown): void {
    const { status, body } = toWireError(error)
    reportError(this.#state, error, status, this.#principal, 'ws')
    this.#send([
      id === undefined
        ? { type: 'error', error: body.error }
        : { type: 'error', id, error: body.error },
    ])
  }

  #send(messages: ServerMessage[]): void {
    if (this.#closed || this.#socket.readyState !== this.#socket.OPEN) return
    // Checked before adding, so one large answer (a big snapshot) on an idle connection gets
    // through; past the bound, the client is not reading (or asked for more than it can take
    // in one go): free what it holds. Answers of one turn count too, not only the socket's.
    if (this.#outbox.unsent > this.#state.options.limits.wsMaxBufferBytes) {
      this.#state.metrics.operation('', 'ws', 'SlowConsumer')
      this.#state.guard.hit('wsMaxBufferBytes', { pid: this.#session?.process.id })
      this.close(CLOSE_CODES.slowConsumer, 'send buffer full: the client is not reading')
      return
    }
    this.#outbox.push(messages)
  }

  /** What to send instead of a message that cannot be encoded (see WsOutbox). */
  #unencodable(message: ServerMessage, error: unknown): ServerMessage | undefined {
    const why = error instanceof Error ? error.message : String(error)
    if (message.type === 'result') {
      const failure = new TooLarge(
        `the answer to call ${message.id} cannot be encoded (${why}); ask for less, e.g. list with a limit`,
      )
      return { type: 'error', id: message.id, error: toWireError(failure).body.error }
    }
    if (message.type === 'events') {
      const stream = this.#streams.get(message.id)
      this.#streams.delete(message.id)
      stream?.close()
      return { type: 'end', id: message.id, reason: 'error' }
    }
    return undefined
  }

  #flush(): void {
    this.#outbox.flush()
  }

  #teardown(): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#pinger)
    clearTimeout(this.#helloTimer)
    for (const stream of this.#streams.values()) stream.close()
    this.#streams.clear()
    const session = this.#session
    if (session !== undefined && attached.get(session) === this) attached.delete(session)
    this.#onClose(this)
  }
}

function outcomeOf(error: unknown): string {
  return error instanceof DataspaceError ? error.code : 'Internal'
}

function closeReasonOf(reason: unknown): string {
  if (typeof reason === 'string') return reason
  return 'error'
}
