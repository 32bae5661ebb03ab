/**
 * The WebSocket protocol's message model (`docs/protocol.md`, "WebSocket"). A frame carries one
 * message or an array of messages (pipelining: many calls in one frame, many results back). The
 * model is independent of the codec: `hello` names the codec, and JSON is the only one today, so
 * a binary codec can be added without changing any message.
 */

/** The protocol version this code speaks; `hello.v` must equal it. */
export const PROTOCOL_VERSION = 1

/** Codecs a client may ask for in `hello`. */
export type Codec = 'json'

/** First message of every connection, client → server. */
export interface HelloMessage {
  readonly type: 'hello'
  readonly v: number
  readonly codec?: Codec
  /** Bearer token (browsers cannot set an Authorization header on a WebSocket). */
  readonly token?: string
  /** A new session: the process's name and lease in ms. */
  readonly name?: string
  readonly ttl?: number
  /** Re-attaches a session that is still alive; when it is gone the server opens a new one. */
  readonly resume?: { readonly session: string; readonly resumeToken: string }
}

/** The session as the client needs it. */
export interface SessionInfo {
  readonly id: string
  readonly pid: string
  readonly resumeToken: string
  readonly ttl: number
}

/** Server → client answer to `hello`. */
export interface WelcomeMessage {
  readonly type: 'welcome'
  readonly v: number
  readonly node: string
  readonly revision: number
  readonly session: SessionInfo
  /** True when `hello.resume` re-attached the session, false when this is a new one. */
  readonly resumed: boolean
  /**
   * Changes whenever the server restarts. A session can survive a restart (durable backends),
   * but the server's watch history does not reach past it: a client seeing a new epoch starts
   * its streams over instead of resuming them.
   */
  readonly epoch: string
  /** How often the server pings; a client that hears nothing for two intervals reconnects. */
  readonly pingIntervalMs: number
  readonly maxFrameBytes: number
}

/** A request, client → server. `id` is the client's, unique among its pending calls. */
export interface CallMessage {
  readonly type: 'call'
  readonly id: number
  readonly op: string
  readonly args?: Readonly<Record<string, unknown>>
}

/** Cancels a pending call, or closes the stream a call opened. */
export interface CancelMessage {
  readonly type: 'cancel'
  readonly id: number
}

export type ClientMessage = HelloMessage | CallMessage | CancelMessage

/** The outcome of a call. Stream calls answer `null` once the stream is open. */
export interface ResultMessage {
  readonly type: 'result'
  readonly id: number
  readonly value: unknown
}

/** A wire error `{ code, message, …extra }`; without `id` it answers a frame that had none. */
export interface ErrorMessage {
  readonly type: 'error'
  readonly id?: number
  readonly error: { readonly code: string; readonly message: string; readonly [k: string]: unknown }
}

/** Events of the stream opened by call `id`. One frame never splits a commit. */
export interface EventsMessage {
  readonly type: 'events'
  readonly id: number
  readonly events: readonly unknown[]
}

/** The stream opened by call `id` ended on the server's side. */
export interface EndMessage {
  readonly type: 'end'
  readonly id: number
  readonly reason: string
}

/** The server is going away (shutdown): reconnect elsewhere or later; sessions are kept. */
export interface GoodbyeMessage {
  readonly type: 'goodbye'
  readonly reason: string
}

export type ServerMessage =
  WelcomeMessage | ResultMessage | ErrorMessage | EventsMessage | EndMessage | GoodbyeMessage

/** WebSocket close codes the server uses (4000–4999 is the application range). */
export const CLOSE_CODES = Object.freeze({
  /** A malformed or missing `hello`, or an unsupported version or codec. */
  badHello: 4000,
  unauthorized: 4001,
  /** The connection could not take even control frames (send buffer full). */
  slowConsumer: 4008,
  /** The session ended (DELETE, or the server exited it). */
  sessionEnded: 4010,
  /** Another connection resumed this session. */
  sessionTakenOver: 4011,
  /** Graceful shutdown. */
  goingAway: 1001,
  /** The server cannot answer the hello now (a cluster node that cannot reach its store). */
  tryAgainLater: 1013,
  /** The server could not encode a message for this connection (it closes; the process lives). */
  internalError: 1011,
})
