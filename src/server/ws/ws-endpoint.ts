import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import { DataspaceError } from '../../errors/index.js'
import type { Principal } from '../auth.js'
import type { ServerState } from '../request-context.js'
import { WsConnection } from './ws-connection.js'

/** The path of the WebSocket endpoint. */
export const WS_PATH = '/v1/ws'

/** The WebSocket side of a server: accepts upgrades on `/v1/ws`, tracks their connections. */
export class WsEndpoint {
  readonly #wss: WebSocketServer
  readonly #connections = new Set<WsConnection>()

  constructor(http: Server, state: ServerState) {
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: state.options.limits.maxFrameBytes,
      // Compression costs CPU per frame on both sides and buys little for small JSON frames.
      perMessageDeflate: false,
    })
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const refusal = this.#refusal(req, state)
      if (typeof refusal === 'string') {
        socket.end(refusal)
        return
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        // The ws library closes a connection that sends a frame over maxPayload with 1009.
        ws.on('error', (error: Error & { code?: string }) => {
          if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
            state.guard.hit('maxFrameBytes', { transport: 'ws' })
          }
        })
        const conn = new WsConnection(ws, state, refusal.principal, req.socket.remoteAddress, (c) =>
          this.#connections.delete(c),
        )
        this.#connections.add(conn)
      })
    })
  }

  get size(): number {
    return this.#connections.size
  }

  /** Events queued in every open connection's streams, not yet sent. */
  queued(): number {
    let total = 0
    for (const conn of this.#connections) total += conn.queued()
    return total
  }

  /** Sends `goodbye` to every connection and closes it (graceful shutdown). */
  closeAll(reason: string): void {
    for (const conn of [...this.#connections]) conn.goodbye(reason)
    this.#wss.close()
  }

  /**
   * An HTTP response refusing the upgrade, or the principal of a valid Authorization header.
   * Without that header, auth waits for `hello.token` (browsers cannot set headers here).
   */
  #refusal(
    req: IncomingMessage,
    state: ServerState,
  ): string | { principal: Principal | undefined } {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    if (path !== WS_PATH)
      return httpResponse(404, `no WebSocket endpoint at ${path}; use ${WS_PATH}`)
    if (!state.accepting) return httpResponse(503, 'server is shutting down')
    try {
      // Browsers always send Origin on a WebSocket, and CORS does not apply to one: this check
      // is all that keeps another site's page from using the server.
      state.browser.check(req)
    } catch (error) {
      return httpResponse(403, error instanceof Error ? error.message : 'forbidden')
    }
    const over = state.gate.refusal(req.socket)
    if (over !== undefined) return httpResponse(503, over.message)
    const header = req.headers.authorization
    const auth = state.options.auth
    if (auth === undefined || header === undefined) return { principal: undefined }
    try {
      return { principal: state.guard.authenticate(auth, header, req.socket.remoteAddress) }
    } catch (error) {
      const message = error instanceof DataspaceError ? error.message : 'unauthorized'
      if (error instanceof DataspaceError && error.code === 'RateLimited') {
        return httpResponse(429, message)
      }
      state.warnings.warn('auth failed', { transport: 'ws', reason: message }, 'auth failed')
      return httpResponse(401, message)
    }
  }
}

const REFUSALS = {
  401: { code: 'Unauthorized', text: 'Unauthorized' },
  403: { code: 'Forbidden', text: 'Forbidden' },
  404: { code: 'NotFound', text: 'Not Found' },
  429: { code: 'RateLimited', text: 'Too Many Requests' },
  503: { code: 'Unavailable', text: 'Service Unavailable' },
} as const

/** A raw HTTP response for a refused upgrade, with the usual JSON error body. */
function httpResponse(status: keyof typeof REFUSALS, message: string): string {
  const { code, text } = REFUSALS[status]
  const body = JSON.stringify({ error: { code, message } })
  const auth = status === 401 ? 'www-authenticate: Bearer realm="dataspace"\r\n' : ''
  return (
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\n${auth}` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  )
}
