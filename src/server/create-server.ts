import { randomUUID } from 'node:crypto'
import { createServer as createHttpServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { Unavailable } from '../errors/index.js'
import { BrowserGuard, checkJsonBody, UnsupportedMediaType } from './browser-guard.js'
import { ConnectionGate } from './connection-gate.js'
import { ConnectionTracker } from './connections.js'
import type { Principal } from './auth.js'
import { sendError, sendJson } from './http-body.js'
import { callerKey, LimitGuard, sessionKey } from './limits.js'
import { LogThrottle } from './log-throttle.js'
import { NodeMembership } from './membership.js'
import { ServerMetrics } from './metrics.js'
import { resolveOptions } from './options.js'
import type { ServerOptions } from './options.js'
import { checkSessionOwner, RequestContext, SESSION_HEADER, STREAMED } from './request-context.js'
import type { Handler, ServerState } from './request-context.js'
import { Router } from './router.js'
import { kvRoutes } from './routes/kv.js'
import { metricsRoutes } from './routes/metrics.js'
import { nodeRoutes } from './routes/nodes.js'
import { recordRoutes } from './routes/records.js'
import { registryRoutes } from './routes/registry.js'
import { sessionRoutes } from './routes/sessions.js'
import { watchRoutes } from './routes/watches.js'
import { writeRoutes } from './routes/writes.js'
import { SessionTable } from './session-table.js'
import type { Session } from './session-table.js'
import { SseRegistry } from './sse-stream.js'
import { reportError } from './report.js'
import { toWireError } from '../protocol/index.js'
import type { WireError } from '../protocol/index.js'
import { WsEndpoint } from './ws/ws-endpoint.js'
import { installDurableAnswers, restoreAnswers } from './ws/durable-answers.js'

/** A running server. */
export interface DataspaceServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string
  /** Live sessions and open SSE streams (for tests and, later, metrics). */
  readonly stats: {
    readonly sessions: number
    readonly sseStreams: number
    readonly wsConnections: number
  }
  /**
   * Graceful shutdown: stops accepting, ends every SSE stream, exits every session (their
   * records are retracted), waits for in-flight requests, and resolves. Idempotent.
   */
  close(): Promise<void>
}

// In-flight requests get this long after close() before their connections are cut.
const CLOSE_GRACE_MS = 2000

/**
 * Serves a dataspace over WebSocket, HTTP JSON and SSE (`docs/protocol.md`), on 127.0.0.1 unless told.
 *
 * @example
 * const ds = createDataspace()
 * const server = await createServer({ ds, port: 0 })
 * const res = await fetch(`${server.url}/v1/records/api.route`)
 * await server.close()
 */
export async function createServer(options: ServerOptions): Promise<DataspaceServer> {
  const resolved = resolveOptions(options)
  const { limits, logger } = resolved
  const router = new Router<Handler>()
  for (const routes of [
    sessionRoutes,
    recordRoutes,
    writeRoutes,
    watchRoutes,
    kvRoutes,
    registryRoutes,
    metricsRoutes,
    nodeRoutes,
  ]) {
    routes(router)
  }
  let accepting = true
  const sse = new SseRegistry()
  const run = randomUUID()
  // What a client's resumed watches continue (`welcome.epoch`): this run's history, or on a
  // cluster node the store's, whose revisions every node shares (a watch moved to another node
  // resumes from its revision there).
  const epoch =
    resolved.ds.clustered && resolved.ds.storeName !== undefined
      ? `cluster:${resolved.ds.storeName}`
      : run
  // Unique per server start; the engine's node name first, so pids and nodes read alike.
  const membership = new NodeMembership(
    `${resolved.ds.node}-${run.slice(0, 8)}`,
    resolved.ds.membership,
    limits.nodeHeartbeatMs,
    logger,
  )
  const metrics = new ServerMetrics({
    ds: resolved.ds,
    sessions: () => sessions.size,
    sseStreams: () => sse.size,
    slowConsumerCloses: () => sse.slowConsumerResets,
    // `endpoint` is created below; these run only at scrape time, after it exists.
    wsConnections: () => endpoint.size,
    queueDepth: () => sse.queued() + endpoint.queued(),
    liveNodes: async () => (await membership.view(false)).live,
  })
  const warnings = new LogThrottle(logger)
  const guard = new LimitGuard(resolved.ds, limits, warnings, (limit) => metrics.limitHit(limit))
  const sessions = new SessionTable(
    resolved.ds,
    resolved.sessionTtl,
    { min: limits.minSessionTtl, max: limits.maxSessionTtl },
    (event, session, reason) => {
      metrics.sessionEvent(event)
      // The pid only: the session id and resume token are capabilities.
      const owner = state.sessionOwners.get(session)?.name
      logger.info(
        {
          pid: session.process.id,
          ttl: session.ttl,
          ...(owner === undefined ? {} : { token: owner }),
          ...(reason === undefined ? {} : { reason }),
        },
        `session ${event}`,
      )
      if (event === 'expired' || event === 'ended') guard.forget(sessionKey(session))
    },
    (message, session, error) =>
      logger.warn(
        { pid: session.process.id, err: error instanceof Error ? error.message : String(error) },
        message,
      ),
  )
  const gate = new ConnectionGate(limits, guard)
  const browser = new BrowserGuard(resolved)
  const state: ServerState = {
    ds: resolved.ds,
    epoch,
    options: resolved,
    sessions,
    sse,
    metrics,
    sessionOwners: new WeakMap(),
    get accepting() {
      return accepting
    },
    guard,
    logger,
    warnings,
    gate,
    browser,
    membership,
  }
  // Sessions a durable store kept across a restart: their clients have one TTL to come back.
  installDurableAnswers(sessions.store)
  for (const stored of sessions.store.restoredSessions) {
    const session = sessions.adopt(stored)
    if (session !== undefined) restoreAnswers(sessions.store, session)
    const principal =
      stored.principal === null ? undefined : resolved.auth?.byName(stored.principal)
    if (session !== undefined && principal !== undefined)
      state.sessionOwners.set(session, principal)
  }
  const http = createHttpServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this interval (30 s by default, which let a
      // slowloris hold a socket for minutes): a quarter of the headers timeout, at most 1 s.
      connectionsCheckingInterval: Math.max(10, Math.min(1000, limits.headersTimeoutMs / 4)),
    },
    (req, res) => {
      connections.track(req, res)
      handle(router, state, req, res).catch((error: unknown) => {
        resolved.onInternalError(error)
        res.destroy()
      })
    },
  )
  http.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    answerClientError(state, error, socket)
  })
  gate.watch(http)
  const connections = new ConnectionTracker(http)
  const endpoint = new WsEndpoint(http, state)
  await listen(http, resolved.host, resolved.port)
  const address = http.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`
  await membership.start(url)
  // A follower serves reads and watches of a store another server writes, and refuses writes;
  // a cluster node writes the store with its other nodes, in turns.
  const role = resolved.ds.role
  logger.info({ url, role, auth: resolved.auth !== undefined, limits }, 'server started')
  let closing: Promise<void> | undefined
  return {
    url,
    get stats() {
      return {
        sessions: state.sessions.size,
        sseStreams: state.sse.size,
        wsConnections: endpoint.size,
      }
    },
    close() {
      closing ??= (async () => {
        accepting = false
        logger.info(
          { sessions: sessions.size, sseStreams: sse.size, wsConnections: endpoint.size },
          'server stopping',
        )
        const closed = new Promise<void>((resolve) => http.close(() => resolve()))
        // First: the other nodes and their clients stop counting on this one at once.
        const left = membership.close()
        state.sse.closeAll()
        endpoint.closeAll('server is shutting down')
        await state.sessions.closeAll()
        connections.drain()
        const cut = setTimeout(() => connections.destroyAll(), CLOSE_GRACE_MS)
        cut.unref()
        await closed
        clearTimeout(cut)
        await left
        logger.info({ url }, 'server stopped')
      })()
      return closing
    },
  }
}

// Probes answer without a token: orchestrators cannot hold one.
const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/livez', '/readyz'])
// Not rate limited: probes and scrapes must work however busy the server is.
const UNLIMITED_PATHS: ReadonlySet<string> = new Set([...PUBLIC_PATHS, '/metrics'])

async function handle(
  router: Router<Handler>,
  state: ServerState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint()
  let ctx: RequestContext | undefined
  let principal: Principal | undefined
  let outcome = 'ok'
  try {
    if (!state.accepting) throw new Unavailable('server is shutting down')
    const url = new URL(req.url ?? '/', 'http://localhost')
    const origin = state.browser.check(req)
    state.browser.cors(res, origin)
    if (req.method === 'OPTIONS' && origin !== undefined) {
      state.browser.preflight(res, origin)
      return
    }
    checkJsonBody(req)
    const over = state.gate.refusal(req.socket)
    if (over !== undefined) {
      // One answer on a connection past a limit: a probe's or a scrape's, else 503; then it
      // closes. Operators can still see a server under a connection flood.
      res.setHeader('connection', 'close')
      if (!UNLIMITED_PATHS.has(url.pathname)) throw over
    }
    const match = router.match(req.method ?? 'GET', url.pathname)
    if (match.type === 'not-found') {
      sendJson(res, 404, { error: { code: 'NotFound', message: `no route ${url.pathname}` } })
      return
    }
    if (match.type === 'method-not-allowed') {
      const allow = match.allow.join(', ')
      const message = `${req.method ?? ''} is not allowed on ${url.pathname}; use ${allow}`
      sendJson(res, 405, { error: { code: 'InvalidArgument', message } }, { allow })
      return
    }
    const auth = state.options.auth
    principal =
      auth === undefined || PUBLIC_PATHS.has(url.pathname)
        ? undefined
        : state.guard.authenticate(auth, req.headers.authorization, req.socket.remoteAddress)
    const current = session(state, req, principal)
    if (!UNLIMITED_PATHS.has(url.pathname)) {
      state.guard.takeCall(
        current === undefined
          ? callerKey(principal?.name, req.socket.remoteAddress)
          : sessionKey(current),
      )
    }
    ctx = new RequestContext(req, res, match.params, url.searchParams, state, current, principal)
    const reply = await match.handler(ctx)
    if (reply !== STREAMED) sendJson(res, reply.status, reply.body)
  } catch (error) {
    const wire = toWireError(error)
    const { body } = wire
    const status = error instanceof UnsupportedMediaType ? 415 : wire.status
    outcome = body.error.code
    reportError(state, error, status, principal, 'http')
    sendError(res, status, body, extraHeaders(status, body))
  } finally {
    record(state, ctx, outcome, started)
  }
}

function extraHeaders(status: number, body: WireError): Record<string, string> {
  // RFC 9110: Retry-After in whole seconds; the body's retryAfterMs is the precise value.
  if (body.error.code === 'RateLimited' && typeof body.error.retryAfterMs === 'number') {
    return { 'retry-after': String(Math.ceil(body.error.retryAfterMs / 1000)) }
  }
  // An unread upload (413) is dropped with the connection rather than read to its end.
  if (status === 413) return { connection: 'close' }
  // RFC 9110: a 401 names the scheme to use.
  if (status === 401) return { 'www-authenticate': 'Bearer realm="dataspace"' }
  return {}
}

/** Counts the operation a handler named (requests refused before that count as `request`). */
function record(
  state: ServerState,
  ctx: RequestContext | undefined,
  outcome: string,
  started: bigint,
): void {
  const operation = ctx?.operation
  if (operation === undefined) {
    if (outcome !== 'ok') state.metrics.operation('', 'request', outcome)
    return
  }
  state.metrics.operation(operation.kind, operation.op, outcome)
  if (operation.right === 'write') {
    state.metrics.commitLatency(Number(process.hrtime.bigint() - started) / 1e9)
  }
}

/**
 * The session named by the request's header, its lease renewed; none without the header. With
 * auth on, only the token that opened the session may use it.
 */
function session(
  state: ServerState,
  req: IncomingMessage,
  principal: Principal | undefined,
): Session | undefined {
  const header = req.headers[SESSION_HEADER]
  if (header === undefined) return undefined
  const id = Array.isArray(header) ? (header[0] ?? '') : header
  // Checked before renewing: another token must not keep someone else's session alive.
  checkSessionOwner(state, state.sessions.find(id), principal)
  return state.sessions.touch(id)
}

/**
 * Answers a request the HTTP parser gave up on: 408 when it took longer than `headersTimeoutMs`
 * / `requestTimeoutMs` (counted as a `requestTimeoutMs` hit), 431 for oversized headers, 400
 * for anything else unparsable — what Node answers by default, plus the count.
 */
function answerClientError(state: ServerState, error: NodeJS.ErrnoException, socket: Duplex): void {
  const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
  if (timeout) state.guard.hit('requestTimeoutMs', { transport: 'http' })
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const status = timeout
    ? '408 Request Timeout'
    : error.code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : '400 Bad Request'
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
}

function listen(http: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => {
      http.off('error', reject)
      resolve()
    })
  })
}
