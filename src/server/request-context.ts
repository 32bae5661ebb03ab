import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Dataspace } from '../dataspace.js'
import { Forbidden, InvalidArgument, TooLarge } from '../errors/index.js'
import { authorize } from './auth.js'
import type { Principal, Right } from './auth.js'
import { readJsonObject } from './http-body.js'
import { callerKey, sessionKey } from './limits.js'
import type { LimitGuard, LimitKey } from './limits.js'
import type { LogThrottle } from './log-throttle.js'
import type { BrowserGuard } from './browser-guard.js'
import type { ConnectionGate } from './connection-gate.js'
import type { ServerMetrics } from './metrics.js'
import type { ResolvedOptions } from './options.js'
import type { Session, SessionTable } from './session-table.js'
import type { SseRegistry } from './sse-stream.js'

/** The header that carries a session id on every request made on the session's behalf. */
export const SESSION_HEADER = 'dataspace-session'

/** What a handler answers: a JSON body with a status, or `STREAMED` when it took the response. */
export type Reply = { readonly status: number; readonly body?: unknown } | typeof STREAMED

/** Returned by handlers that write the response themselves (SSE). */
export const STREAMED: unique symbol = Symbol('streamed')

/** A JSON reply (200 unless told). */
export function json(body: unknown, status = 200): Reply {
  return { status, body }
}

/** An empty 204 reply. */
export const NO_CONTENT: Reply = Object.freeze({ status: 204 })

/** The server-wide state handlers use. */
export interface ServerState {
  readonly ds: Dataspace
  /** A random id of this server's run (`welcome.epoch`). */
  readonly epoch: string
  readonly options: ResolvedOptions
  readonly sessions: SessionTable
  readonly sse: SseRegistry
  readonly metrics: ServerMetrics
  /** Who opened each session (auth on): a session may only be used with that token. */
  readonly sessionOwners: WeakMap<Session, Principal>
  /** False once `close()` has begun: `/readyz` fails and new work is refused. */
  readonly accepting: boolean
  /** Per-session limits: records, streams, call rate; counts and logs every hit. */
  readonly guard: LimitGuard
  readonly logger: Logger
  /** Warnings a client can cause (auth failures, refusals): at most one a second per reason. */
  readonly warnings: LogThrottle
  /** Open connections, in total and per address; marks those past a cap. */
  readonly gate: ConnectionGate
  /** The Origin, Host and CORS rules for browsers. */
  readonly browser: BrowserGuard
}

/** One request as handlers see it. */
export class RequestContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly params: Readonly<Record<string, string>>
  readonly query: URLSearchParams
  readonly server: ServerState
  /** The session named by the `Dataspace-Session` header, already renewed; resolved on entry. */
  readonly session: Session | undefined
  /** The authenticated caller; `undefined` when auth is off. */
  readonly principal: Principal | undefined
  #op: string | undefined
  #kind = ''
  #right: Right | undefined

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    params: Readonly<Record<string, string>>,
    query: URLSearchParams,
    server: ServerState,
    session: Session | undefined,
    principal: Principal | undefined,
  ) {
    this.req = req
    this.res = res
    this.params = params
    this.query = query
    this.server = server
    this.session = session
    this.principal = principal
  }

  /** The operation's metric labels and the right it needed, once a handler has named them. */
  get operation():
    { readonly op: string; readonly kind: string; readonly right: Right | undefined } | undefined {
    const op = this.#op
    return op === undefined ? undefined : { op, kind: this.#kind, right: this.#right }
  }

  /** Names an operation that needs no right beyond a valid token (sessions). */
  named(op: string, kind = ''): void {
    this.#op = op
    this.#kind = kind
  }

  /**
   * Names the operation (for metrics) and checks the caller's `right` on `kind`: every handler
   * calls this before it touches the dataspace. `Forbidden` (403) when the token lacks it.
   */
  authorize(op: string, kind: string, right: Right): void {
    this.#op = op
    this.#kind = kind
    this.#right = right
    this.require(kind, right)
  }

  /** Checks one more right (a transaction touching several kinds). */
  require(kind: string, right: Right): void {
    if (this.principal !== undefined) authorize(this.principal, kind, right)
  }

  /** The session `id` (from the path), renewed, and only for the token that opened it. */
  sessionById(id: string): Session {
    // Checked before renewing: another token must not keep someone else's session alive.
    checkSessionOwner(this.server, this.server.sessions.find(id), this.principal)
    return this.server.sessions.touch(id)
  }

  get ds(): Dataspace {
    return this.server.ds
  }

  /** A path parameter the route pattern guarantees. */
  param(name: string): string {
    const value = this.params[name]
    if (value === undefined) throw new Error(`route has no parameter ${name}`)
    return value
  }

  /** The session, or `InvalidArgument` (400) saying the operation needs one. */
  requireSession(what: string): Session {
    if (this.session !== undefined) return this.session
    throw new InvalidArgument(
      `${what} needs a session: open one with POST /v1/sessions and pass its id in the ` +
        `Dataspace-Session header`,
    )
  }

  /** The JSON object body, size-limited while it streams. */
  async body(): Promise<Record<string, unknown>> {
    try {
      return await readJsonObject(this.req, this.server.options.limits.maxBodyBytes)
    } catch (error) {
      if (error instanceof TooLarge) this.server.guard.hit('maxBodyBytes', { op: this.#op })
      throw error
    }
  }

  /**
   * Who this request's streams and calls count against: its session, else its token, else its
   * client address.
   */
  get limitKey(): LimitKey {
    if (this.session !== undefined) return sessionKey(this.session)
    return callerKey(this.principal?.name, this.req.socket.remoteAddress)
  }

  /** `TooLarge` unless the session may own `adding` more records (`maxRecordsPerSession`). */
  checkRecords(session: Session, adding = 1): void {
    this.server.guard.checkRecords(session, adding)
  }

  /** True when the client asked for `text/event-stream`. */
  get wantsEventStream(): boolean {
    return (this.req.headers.accept ?? '').includes('text/event-stream')
  }
}

/** `Forbidden` when auth is on and `session` was opened with another token. */
export function checkSessionOwner(
  server: ServerState,
  session: Session,
  principal: Principal | undefined,
): void {
  if (principal === undefined) return
  if (server.sessionOwners.get(session) !== principal) {
    throw new Forbidden('this session was opened with another token; use that token')
  }
}

/**
 * `pid` when it is a process of `session` — its own or a child `<pid>.<n>`, alive or exited —
 * else `Forbidden`. The one rule of every transport for each pid a caller acts as, joins to or
 * removes from a group, or makes the owner of a key: a caller without a session has no pid.
 * Children are matched exactly (digits after the dot), not by prefix: another client may
 * choose a process name that makes its pid start with this session's pid.
 */
export function checkOwnPid(session: Session | undefined, pid: string): string {
  if (session !== undefined) {
    const own = session.process.id
    if (pid === own || session.processes.has(pid)) return pid
    if (pid.startsWith(`${own}.`) && /^[1-9]\d*$/.test(pid.slice(own.length + 1))) return pid
  }
  const why =
    session === undefined ? 'this request has no session' : 'it is not a process of this session'
  throw new Forbidden(
    `${pid} is not yours (${why}): a caller may act as, join, leave or give ownership only to ` +
      `its own session's process and its children`,
  )
}

/** `{ …obj }` without its `undefined` values, for `exactOptionalPropertyTypes` option objects. */
export function defined<T extends object>(obj: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>
  }
}

/** A route handler: answers a reply, or `STREAMED` when it wrote the response itself. */
export type Handler = (ctx: RequestContext) => Promise<Reply>
