import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { pino } from 'pino'
import type { Logger } from 'pino'
import type { Dataspace } from '../dataspace.js'
import { InvalidArgument } from '../errors/index.js'
import { TokenTable } from './auth.js'
import type { AuthOptions } from './auth.js'

/** Limits the server enforces, each with a clear error when exceeded. */
export interface ServerLimits {
  /** Largest request body, in bytes (default 1 MiB); larger is `TooLarge` / 413. */
  readonly maxBodyBytes: number
  /**
   * How many bytes an SSE response may have waiting in its socket before the watch is closed with
   * a final `reset` (default 1 MiB): a slow client costs at most this plus one event.
   */
  readonly sseBufferBytes: number
  /** Interval of SSE heartbeat comments, in ms (default 15 s): keeps proxies from timing out. */
  readonly sseHeartbeatMs: number
  /**
   * How often this server renews its row in the cluster's `nodes` table, in ms (default 2 s;
   * PostgreSQL only). A node is live while its last heartbeat is within 3 intervals, and its row
   * is pruned after 10 (docs/cluster.md, "Membership").
   */
  readonly nodeHeartbeatMs: number
  /** Largest WebSocket frame, in bytes (default 1 MiB); larger closes the connection (1009). */
  readonly maxFrameBytes: number
  /** How often the server pings a WebSocket (default 5 s; at most a third of the session TTL). */
  readonly wsPingIntervalMs: number
  /**
   * Unsent bytes a WebSocket may hold before its streams stop being pumped (default 1 MiB):
   * events then wait in the engine's bounded watch queue, which resets a watch that stays behind.
   */
  readonly wsSendBufferBytes: number
  /** Unsent bytes after which a WebSocket is closed (4008): it does not even read answers (8 MiB). */
  readonly wsMaxBufferBytes: number
  /** Bounds of a session's lease TTL, in ms. */
  readonly minSessionTtl: number
  readonly maxSessionTtl: number
  /**
   * Records a session's processes (children included) may own together, KV keys, group
   * memberships and names included (default 100 000). A write that would go past it is
   * `TooLarge` (413); retracts and deletes are always allowed.
   */
  readonly maxRecordsPerSession: number
  /**
   * Open streams (watches, monitors, mailboxes) per session (default 1000): WebSocket streams
   * of the session's connection and SSE responses carrying its `Dataspace-Session` header
   * together. An SSE request without a session counts against its token (auth on) or its client
   * address. One more is `TooLarge` (413).
   */
  readonly maxStreamsPerSession: number
  /**
   * Sustained calls per second per session (default 100 000, above what one client pipelines): WebSocket calls and HTTP requests
   * (a request without a session counts against its token, or its client address). A token
   * bucket: over it is `RateLimited` (429) with `retryAfterMs`. Probes and `/metrics` are free.
   */
  readonly maxCallsPerSecond: number
  /** Calls a session may make at once above the sustained rate: the bucket's size (100 000). */
  readonly callBurst: number
  /**
   * Open sessions in total (default 50 000). One more (`POST /v1/sessions`, or a WebSocket
   * `hello` that opens one) is `TooLarge` (413) until a session ends or expires.
   */
  readonly maxSessions: number
  /** Open sessions opened with one token, auth on (default 10 000); over it is `TooLarge`. */
  readonly maxSessionsPerToken: number
  /** Open sessions opened from one client address, auth off (default 1000); over it is `TooLarge`. */
  readonly maxSessionsPerAddress: number
  /**
   * Open TCP connections in total, HTTP and WebSocket (default 10 000, or the process's open-file
   * limit minus 256 when that is lower). Past it a connection gets only the probes (`/livez`,
   * `/readyz`) and `/metrics`; anything else is answered 503 `Unavailable` and the connection closed. Past it by
   * 64 more, new connections are closed at once.
   */
  readonly maxConnections: number
  /** Open connections from one client address (default 1000); past it, as `maxConnections`. */
  readonly maxConnectionsPerAddress: number
  /**
   * How long a WebSocket may stay open without a `hello`, in ms (default 10 s); then it is
   * closed with 4000 (`badHello`).
   */
  readonly wsHelloTimeoutMs: number
  /**
   * How long a client may take to send a request's headers, in ms (default 10 s): the slowloris
   * bound. Then the server answers 408 and closes the connection.
   */
  readonly headersTimeoutMs: number
  /** How long a client may take to send a whole request, body included, in ms (default 30 s). */
  readonly requestTimeoutMs: number
  /** How long an idle keep-alive connection stays open between requests, in ms (default 5 s). */
  readonly keepAliveTimeoutMs: number
  /**
   * Failed authentications per second per client address, sustained (default 10): a token
   * bucket of `authFailureBurst`. While it is empty, requests and upgrades from that address
   * that carry a token are refused with `RateLimited` (429) before the token is checked.
   */
  readonly maxAuthFailuresPerSecond: number
  /** Failed authentications a client address may make at once (default 100). */
  readonly authFailureBurst: number
}

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** The dataspace to serve; the server never closes it. */
  readonly ds: Dataspace
  /** Default `127.0.0.1`. Without `auth`, a non-loopback address needs `insecure: true`. */
  readonly host?: string
  /** Default 7411; `0` picks a free port (tests). */
  readonly port?: number
  /** Allows a non-loopback `host` without authentication. */
  readonly insecure?: boolean
  /**
   * Bearer tokens with rights per kind glob (see `loadTokenFile`). Without it every request is
   * allowed, which is why the server then only listens on loopback unless `insecure`.
   */
  readonly auth?: AuthOptions
  /** Default lease of a session, in ms (10 s). */
  readonly sessionTtl?: number
  readonly limits?: Partial<ServerLimits>
  /**
   * A pino logger for structured logs: server start and stop, sessions, auth failures, limit
   * hits, internal errors (default: pino to stderr at `info`). Pass `pino({ level: 'silent' })`
   * to silence it. Session ids, resume tokens and bearer tokens are never logged.
   */
  readonly logger?: Logger
  /** Called with every error that became a 500 (default: logged by `logger` at `error`). */
  readonly onInternalError?: (error: unknown) => void
  /**
   * Origins (`scheme://host[:port]`) whose browser pages may call the server: their requests
   * and WebSocket upgrades are accepted and CORS answers them. Default none: any request that
   * carries an `Origin` header is refused (403), so no web page can drive the server. `'*'`
   * allows every origin (only behind auth). See `docs/server.md`, "Browsers".
   */
  readonly allowedOrigins?: readonly string[]
  /**
   * Host names (with or without `:port`) the server answers besides its own address, for DNS
   * rebinding protection. On a loopback bind the default is `localhost`, `127.0.0.1` and `[::1]`
   * with the bound port; any other `Host` is refused (403). On other binds `Host` is not checked
   * unless this is given. `'*'` turns the check off.
   */
  readonly allowedHosts?: readonly string[]
}

/** Options with every default filled in, frozen. */
export interface ResolvedOptions {
  readonly ds: Dataspace
  readonly host: string
  readonly port: number
  /** The tokens, or `undefined` when auth is off. */
  readonly auth: TokenTable | undefined
  readonly sessionTtl: number
  readonly limits: ServerLimits
  readonly logger: Logger
  readonly onInternalError: (error: unknown) => void
  /** Lower-cased origins allowed to call (CORS); empty: none. */
  readonly allowedOrigins: readonly string[]
  /** Lower-cased extra `Host` values allowed, or `undefined` for the default rule. */
  readonly allowedHosts: readonly string[] | undefined
}

export const DEFAULT_PORT = 7411
export const DEFAULT_LIMITS: ServerLimits = Object.freeze({
  maxBodyBytes: 1024 * 1024,
  sseBufferBytes: 1024 * 1024,
  sseHeartbeatMs: 15_000,
  nodeHeartbeatMs: 2_000,
  maxFrameBytes: 1024 * 1024,
  wsPingIntervalMs: 5_000,
  wsSendBufferBytes: 1024 * 1024,
  wsMaxBufferBytes: 8 * 1024 * 1024,
  minSessionTtl: 100,
  maxSessionTtl: 3_600_000,
  maxRecordsPerSession: 100_000,
  maxStreamsPerSession: 1_000,
  maxCallsPerSecond: 100_000,
  callBurst: 100_000,
  maxSessions: 50_000,
  maxSessionsPerToken: 10_000,
  maxSessionsPerAddress: 1_000,
  maxConnections: defaultMaxConnections(),
  maxConnectionsPerAddress: 1_000,
  wsHelloTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxAuthFailuresPerSecond: 10,
  authFailureBurst: 100,
})

// File descriptors kept free for what the server itself opens (database files, pools, logs).
const FD_RESERVE = 256

/**
 * 10 000 connections, or fewer when the open-file limit is lower: a connection past that limit
 * would fail `accept()` and stop the server answering anyone, probes included.
 */
function defaultMaxConnections(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8')
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1])
    if (Number.isSafeInteger(soft) && soft > FD_RESERVE * 2) {
      return Math.min(10_000, soft - FD_RESERVE)
    }
  } catch {
    // Not Linux: keep the default.
  }
  return 10_000
}

/** Fills defaults and checks the options; refuses a non-loopback host without auth or `insecure`. */
export function resolveOptions(options: ServerOptions): ResolvedOptions {
  const host = options.host ?? '127.0.0.1'
  const auth = options.auth === undefined ? undefined : new TokenTable(options.auth)
  if (auth === undefined && !isLoopback(host) && options.insecure !== true) {
    throw new InvalidArgument(
      `refusing to listen on ${host} without auth: no authentication (token file) is ` +
        `configured, so anyone who can reach this address could read and write everything. ` +
        `Configure auth, listen on 127.0.0.1, or pass insecure: true to accept that risk`,
    )
  }
  const limits: ServerLimits = Object.freeze({ ...DEFAULT_LIMITS, ...options.limits })
  for (const [name, value] of Object.entries(limits)) {
    positive(`limits.${name}`, value)
    // Every `…Ms` limit arms a timer; past 2^31 − 1 ms Node fires it after 1 ms instead (a
    // heartbeat or ping every millisecond), so such a value is refused, not clamped.
    if (name.endsWith('Ms') && (value as number) > MAX_TIMER_MS) {
      throw new InvalidArgument(
        `limits.${name} must be at most ${MAX_TIMER_MS} ms (about 24.8 days), got ${String(value)}`,
      )
    }
  }
  const sessionTtl = positive('sessionTtl', options.sessionTtl ?? 10_000)
  const port = options.port ?? DEFAULT_PORT
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgument(`port must be an integer from 0 to 65535, got ${port}`)
  }
  const logger = options.logger ?? pino({ name: 'dataspace', level: 'info' }, pino.destination(2))
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new InvalidArgument(
      `limits.headersTimeoutMs (${limits.headersTimeoutMs}) must not exceed ` +
        `limits.requestTimeoutMs (${limits.requestTimeoutMs})`,
    )
  }
  return Object.freeze({
    allowedOrigins: Object.freeze(
      (options.allowedOrigins ?? []).map((origin) => checkOrigin(origin)),
    ),
    allowedHosts:
      options.allowedHosts === undefined
        ? undefined
        : Object.freeze(options.allowedHosts.map((h) => h.toLowerCase())),
    ds: options.ds,
    host,
    port,
    auth,
    sessionTtl,
    limits,
    logger,
    onInternalError:
      options.onInternalError ?? ((error) => logger.error({ err: error }, 'internal error')),
  })
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (isIP(bare) === 4) return bare.startsWith('127.')
  if (isIP(bare) === 6) return bare === '::1' || bare.startsWith('::ffff:127.')
  return false
}

/** An allowed origin as browsers send it: `scheme://host[:port]` lower-cased, or `*`. */
function checkOrigin(origin: string): string {
  if (origin === '*') return origin
  let url: URL | undefined
  try {
    url = new URL(origin)
  } catch {
    url = undefined
  }
  if (url === undefined || url.origin === 'null' || url.origin !== origin.toLowerCase()) {
    throw new InvalidArgument(
      `allowed origin "${origin}" must be scheme://host[:port] with no path, as browsers send ` +
        `it in the Origin header (e.g. http://localhost:3000), or "*"`,
    )
  }
  return url.origin
}

/** The longest delay `setTimeout` / `setInterval` take. */
const MAX_TIMER_MS = 2 ** 31 - 1

function positive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgument(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}
