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
import type { NodeMembership } from './membership.js'
import type { BrowserGuard } from './browser-guard.js'
import type { ConnectionGate } from './connection-gate.js'
import type { ServerMetrics } from './metrics.js'
import type { ResolvedOptions } from './options.js'
import type { Session, SessionTable } from './session-table.js'
import type { SseRegistry } from './sse-stream.js'
import { checkCall } from './check-call.js'
import { Caller, HANDLERS } from './handlers.js'
import type { OpEnv } from './handlers.js'
import { recordsAdded } from './record-quota.js'
import type {
  Need,
  OperationName,
  OpArgs,
  StreamOperation,
  UnaryOperation,
} from '../protocol/index.js'
import type { Stream } from '../model/index.js'

type UnaryHandler = (env: OpEnv, args: unknown, caller: Caller) => Promise<unknown>
type StreamHandler = (env: OpEnv, args: unknown, caller: Caller) => Stream<unknown>

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
  /** This server as a node of the cluster: its id, heartbeat and the members. */
  readonly membership: NodeMembership
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

  /** Checks a right outside the operation table (`/metrics`). */
  require(kind: string, right: Right): void {
    if (this.principal !== undefined) authorize(this.principal, kind, right)
  }

  /**
   * Runs operation `name` of the table (`src/protocol/operations.ts`) with the wire arguments
   * the route built from the path, query and body: the table's checks (shape, rights, own
   * pids), the session's record quota, then the handler — exactly as over WebSocket.
   */
  async run<N extends UnaryOperation>(
    name: N,
    raw: Readonly<Record<string, unknown>>,
  ): Promise<unknown> {
    const args = this.#check(name, raw)
    const session = this.session
    if (session !== undefined) {
      this.checkRecords(session, recordsAdded(this.ds, session, name, args))
    }
    const handler = HANDLERS[name] as unknown as UnaryHandler
    return handler(this.#env, args, new Caller(session))
  }

  /**
   * Checks a stream operation (`watch`, `kv.watch`, `groups.monitor`) now, and answers what
   * opens it: the caller counts the stream against its limit in between.
   */
  opener<N extends StreamOperation>(
    name: N,
    raw: Readonly<Record<string, unknown>>,
  ): () => Stream<unknown> {
    const args = this.#check(name, raw)
    const handler = HANDLERS[name] as unknown as StreamHandler
    return () => handler(this.#env, args, new Caller(this.session))
  }

  #check<N extends OperationName>(name: N, raw: Readonly<Record<string, unknown>>): OpArgs<N> {
    this.named(name)
    return checkCall(name, raw, this.session, this.principal, (needs) => this.#label(needs))
  }

  /** The metric labels of the rights a call needs: their one kind, `*` for several, `''` for none. */
  #label(needs: readonly Need[]): void {
    const first = needs[0]
    let kind = first === undefined ? '' : first[0]
    for (let i = 1; i < needs.length; i++) if (needs[i]![0] !== kind) kind = '*'
    this.#kind = kind
    this.#right = first?.[1]
  }

  /** What handlers run with: the server state already holds it, nothing to build per call. */
  get #env(): OpEnv {
    return this.server
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

/** `{ …obj }` without its `undefined` values, for `exactOptionalPropertyTypes` option objects. */
export function defined<T extends object>(obj: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>
  }
}

/** A route handler: answers a reply, or `STREAMED` when it wrote the response itself. */
export type Handler = (ctx: RequestContext) => Promise<Reply>
