import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dataspace } from '../engine/index.js'
import { InvalidArgument } from '../errors/index.js'
import { readJsonObject } from './http-body.js'
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
  readonly options: ResolvedOptions
  readonly sessions: SessionTable
  readonly sse: SseRegistry
  /** False once `close()` has begun: `/readyz` fails and new work is refused. */
  readonly accepting: boolean
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

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    params: Readonly<Record<string, string>>,
    query: URLSearchParams,
    server: ServerState,
    session: Session | undefined,
  ) {
    this.req = req
    this.res = res
    this.params = params
    this.query = query
    this.server = server
    this.session = session
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
  body(): Promise<Record<string, unknown>> {
    return readJsonObject(this.req, this.server.options.limits.maxBodyBytes)
  }

  /** True when the client asked for `text/event-stream`. */
  get wantsEventStream(): boolean {
    return (this.req.headers.accept ?? '').includes('text/event-stream')
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
