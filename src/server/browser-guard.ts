import type { IncomingMessage, ServerResponse } from 'node:http'
import { Forbidden, InvalidArgument } from '../errors/index.js'
import { isLoopback } from './options.js'
import type { ResolvedOptions } from './options.js'

/** A write whose body is not JSON: answered 415 (its code stays `InvalidArgument`). */
export class UnsupportedMediaType extends InvalidArgument {}

// What a browser page on an allowed origin may send (CORS preflight answers).
const CORS_METHODS = 'GET, POST, PUT, DELETE'
const CORS_HEADERS = 'authorization, content-type, dataspace-session, last-event-id'
const CORS_MAX_AGE_S = '600'

/**
 * What keeps a web page from driving the server through its visitor's browser
 * (`docs/server.md`, "Browsers"): the `Origin` check (cross-site requests and WebSockets are
 * refused unless their origin is allowed), the `Host` check (DNS rebinding: a loopback server
 * answers only its loopback names), JSON bodies only (a `text/plain` form post needs no
 * preflight), and CORS headers only for allowed origins. Clients that are not browsers send no
 * `Origin` and are not affected.
 */
export class BrowserGuard {
  readonly #origins: ReadonlySet<string>
  readonly #anyOrigin: boolean
  readonly #hosts: ReadonlySet<string> | undefined
  readonly #checkHost: boolean

  constructor(options: ResolvedOptions) {
    this.#origins = new Set(options.allowedOrigins)
    this.#anyOrigin = this.#origins.has('*')
    const hosts = options.allowedHosts
    this.#checkHost = hosts === undefined ? isLoopback(options.host) : !hosts.includes('*')
    this.#hosts = hosts === undefined ? undefined : new Set(hosts)
  }

  /**
   * `Forbidden` unless the request's `Host` and `Origin` are acceptable; answers the origin to
   * echo in CORS headers (an allowed cross-origin request), else `undefined`.
   */
  check(req: IncomingMessage): string | undefined {
    const host = (req.headers.host ?? '').toLowerCase()
    if (this.#checkHost && req.headers.host !== undefined && !this.#hostAllowed(host)) {
      throw new Forbidden(
        `Host "${host}" is not a name of this server: a loopback server answers only ` +
          `localhost, 127.0.0.1 and [::1] (DNS rebinding protection). Add the name ` +
          `with createServer({ allowedHosts }) or dataspace serve --allow-host NAME`,
      )
    }
    const origin = req.headers.origin?.toLowerCase()
    if (origin === undefined) return undefined
    if (this.#anyOrigin || this.#origins.has(origin)) return origin
    // A page the server itself served (same origin) needs no configuration.
    if (origin === `http://${host}` && host !== '') return undefined
    throw new Forbidden(
      `cross-origin request from ${origin} refused: browsers on other sites may not call this ` +
        `server. Allow the origin with createServer({ allowedOrigins }) or dataspace serve ` +
        `--allow-origin ${origin}`,
    )
  }

  /** Adds the CORS headers of an allowed cross-origin request. */
  cors(res: ServerResponse, origin: string | undefined): void {
    if (origin === undefined) return
    res.setHeader('access-control-allow-origin', origin)
    res.setHeader('access-control-expose-headers', 'retry-after, www-authenticate')
    res.setHeader('vary', 'Origin')
  }

  /** Answers a CORS preflight (`OPTIONS` from an allowed origin) with what may be sent. */
  preflight(res: ServerResponse, origin: string): void {
    res
      .writeHead(204, {
        'access-control-allow-origin': origin,
        'access-control-allow-methods': CORS_METHODS,
        'access-control-allow-headers': CORS_HEADERS,
        'access-control-max-age': CORS_MAX_AGE_S,
        vary: 'Origin',
      })
      .end()
  }

  // The name decides, not the port: a page that rebinds its own domain to 127.0.0.1 still
  // sends that domain, while a port forward or a local proxy (ssh -L, docker -p, a test's TCP
  // proxy) changes only the port in front of a loopback name.
  #hostAllowed(host: string): boolean {
    if (this.#hosts?.has(host) === true) return true
    const colon = host.lastIndexOf(':')
    const name = colon > host.lastIndexOf(']') ? host.slice(0, colon) : host
    if (this.#hosts?.has(name) === true) return true
    return name === 'localhost' || isLoopback(name)
  }
}

/**
 * `UnsupportedMediaType` (415) for a request that carries a body that is not declared
 * `application/json`: the content types a page may send cross-site without a preflight
 * (`text/plain`, forms) are never taken.
 */
export function checkJsonBody(req: IncomingMessage): void {
  const length = req.headers['content-length']
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
  if (!hasBody) return
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type === 'application/json') return
  throw new UnsupportedMediaType(
    `request body must be sent with content-type: application/json, not ` +
      `${type === '' ? 'no content type' : JSON.stringify(type)}`,
  )
}
