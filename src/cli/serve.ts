import { pino } from 'pino'
import type { Logger } from 'pino'
import { checkBackendSpec, DEFAULT_BACKEND, isPostgresSpec, parseBackend } from './backend-spec.js'
import { BYTE_BOUND_NAMES } from '../engine/index.js'
import type { ByteBounds } from '../engine/index.js'
import { createServer, DEFAULT_LIMITS, DEFAULT_PORT, loadTokenFile } from '../server/index.js'
import type { ServerLimits } from '../server/index.js'
import { Unavailable } from '../errors/index.js'
import { stringFlag, usageError } from './command.js'
import type { Command, CommandContext } from './command.js'

/** pino's levels, as `--log-level` takes them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** The resolved `serve` settings: flags win over `DATASPACE_*` env, env over defaults. */
export interface ServeSettings {
  readonly host: string
  readonly port: number
  /** `memory`, `sqlite[:PATH]` or a `postgres://` URL (see backend-spec.ts). */
  readonly backend: string
  readonly insecure: boolean
  /**
   * Follow the PostgreSQL schema another server writes (`--follow` / `DATASPACE_FOLLOW`): serve
   * its reads and watches, refuse writes (docs/server.md, "Followers").
   */
  readonly follow: boolean
  /**
   * Run as a node of a cluster (`--cluster` / `DATASPACE_CLUSTER`): one of several servers that
   * write the one PostgreSQL schema, taking turns (docs/cluster.md).
   */
  readonly cluster: boolean
  readonly auth?: string
  readonly logLevel: (typeof LOG_LEVELS)[number]
  /**
   * Limits given with `--limits` / `DATASPACE_LIMITS`; the rest keep their defaults. The
   * engine's byte bounds (`memoryBudgetBytes`, …) go to the dataspace, the others to the server.
   */
  readonly limits: Partial<ServerLimits & ByteBounds>
  /** Browser origins allowed to call (`--allow-origin` / `DATASPACE_ALLOW_ORIGIN`). */
  readonly allowedOrigins?: readonly string[]
  /** Extra `Host` names answered (`--allow-host` / `DATASPACE_ALLOW_HOST`). */
  readonly allowedHosts?: readonly string[]
  /** How long a SIGTERM / SIGINT shutdown may take before `serve` gives up and exits 1, in ms. */
  readonly shutdownTimeoutMs: number
}

/** The default of `--shutdown-timeout`: long enough for a healthy flush, short for an orchestrator. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000

/** Every name `--limits` takes: the server's limits and the engine's byte bounds. */
const LIMIT_NAMES: readonly string[] = [...Object.keys(DEFAULT_LIMITS), ...BYTE_BOUND_NAMES]

/**
 * `serve`: an embedded dataspace behind the server. Prints one line
 * `dataspace listening on http://HOST:PORT` on stdout, and JSON log lines (pino) on stderr. On
 * SIGTERM / SIGINT it shuts down gracefully: stops accepting, sends `goodbye` to WebSocket
 * clients, ends SSE streams and sessions, lets in-flight requests finish, closes the
 * dataspace, and returns (exit 0). A shutdown that takes longer than `--shutdown-timeout`
 * (storage that cannot take the last writes) ends with one line saying so, and exit 1.
 */
export const serveCommand: Command = {
  name: 'serve',
  usage:
    'serve [--host H] [--port P] [--backend sqlite[:PATH]|memory|postgres://…] ' +
    '[--follow | --cluster] [--auth TOKENS.json] [--insecure] ' +
    '[--log-level info] [--limits NAME=N,…] [--allow-origin ORIGIN,…] [--allow-host NAME,…] ' +
    '[--shutdown-timeout MS]',
  summary: 'run the server with an embedded dataspace',
  details: [
    '--host H        DATASPACE_HOST       default 127.0.0.1',
    '--port P        DATASPACE_PORT       default 7411; 0 picks a free port',
    '--backend SPEC  DATASPACE_BACKEND    default sqlite (./.dataspace/dataspace.db); or memory,',
    '                                     sqlite:PATH, postgres://USER@HOST/DB[?schema=NAME]',
    '--follow        DATASPACE_FOLLOW=1   follow the postgres:// schema another server writes:',
    '                                     serve its reads and watches, refuse writes (503)',
    '--cluster       DATASPACE_CLUSTER=1  write the postgres:// schema together with other',
    '                                     servers started with --cluster (docs/cluster.md)',
    '--auth FILE                          a token file (docs/server.md); default: no auth',
    '--insecure                           allow a non-loopback --host without --auth',
    '--log-level L   DATASPACE_LOG_LEVEL  default info; fatal, error, warn, debug, trace, silent',
    '--limits N=V,…  DATASPACE_LIMITS     server limits and memory bounds by name (docs/server.md)',
    '--allow-origin O,…  DATASPACE_ALLOW_ORIGIN  browser origins allowed (default: none)',
    '--allow-host H,…    DATASPACE_ALLOW_HOST    extra Host names (default: loopback names)',
    '--shutdown-timeout MS  DATASPACE_SHUTDOWN_TIMEOUT  default 10000; then exit 1',
    '',
    'Flags win over the environment. Once listening, prints "dataspace listening on URL" on',
    'stdout; JSON logs go to stderr. SIGTERM or SIGINT shuts down gracefully (exit 0), within',
    '--shutdown-timeout (else exit 1 with the reason).',
  ],
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    backend: { type: 'string' },
    auth: { type: 'string' },
    insecure: { type: 'boolean' },
    follow: { type: 'boolean' },
    cluster: { type: 'boolean' },
    'log-level': { type: 'string' },
    limits: { type: 'string' },
    'allow-origin': { type: 'string' },
    'allow-host': { type: 'string' },
    'shutdown-timeout': { type: 'string' },
  },
  arity: [0, 0],
  async run(ctx) {
    const settings = serveSettings(ctx)
    const auth = settings.auth === undefined ? undefined : await loadTokenFile(settings.auth)
    const logger = stderrLogger(ctx, settings.logLevel)
    const backend = await parseBackend(settings.backend, {
      follow: settings.follow,
      cluster: settings.cluster,
    })
    const { engine, server: serverLimits } = splitLimits(settings.limits)
    const ds = await backend.open({
      ...engine,
      log: { warn: (message, fields) => logger.warn(fields, message) },
    })
    let server
    try {
      server = await createServer({
        ds,
        host: settings.host,
        port: settings.port,
        insecure: settings.insecure,
        logger,
        limits: serverLimits,
        ...(auth === undefined ? {} : { auth }),
        ...(settings.allowedOrigins === undefined
          ? {}
          : { allowedOrigins: settings.allowedOrigins }),
        ...(settings.allowedHosts === undefined ? {} : { allowedHosts: settings.allowedHosts }),
      })
    } catch (error) {
      await ds.close()
      throw error
    }
    logger.info({ backend: backend.label, revision: ds.revision }, 'dataspace opened')
    ctx.io.stdout(`dataspace listening on ${server.url}`)
    if (!ctx.signal.aborted) {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
    }
    const reason: unknown = ctx.signal.reason
    logger.info({ signal: typeof reason === 'string' ? reason : 'abort' }, 'shutting down')
    let stage = 'closing the server (sessions, streams, in-flight requests)'
    const shutdown = (async () => {
      await server.close()
      stage = 'closing the dataspace: the backend has not made the last commits durable'
      await ds.close()
    })()
    await withDeadline(shutdown, settings.shutdownTimeoutMs, () => {
      const message =
        `shutdown did not finish within ${settings.shutdownTimeoutMs} ms (--shutdown-timeout) ` +
        `while ${stage}; exiting anyway — commits not yet durable are lost`
      logger.error({ timeoutMs: settings.shutdownTimeoutMs, stage }, message)
      return new Unavailable(message)
    })
    logger.info('dataspace closed')
    ctx.io.stderr('dataspace stopped')
  },
}

/** Reads flags and `DATASPACE_HOST` / `DATASPACE_PORT` / `DATASPACE_BACKEND`, and checks them. */
export function serveSettings(ctx: CommandContext): ServeSettings {
  const env = ctx.io.env
  const host = stringFlag(ctx.flags.host) ?? nonEmpty(env.DATASPACE_HOST) ?? '127.0.0.1'
  const rawPort = stringFlag(ctx.flags.port) ?? nonEmpty(env.DATASPACE_PORT)
  const port = rawPort === undefined ? DEFAULT_PORT : Number(rawPort)
  if (!/^\d+$/.test(rawPort ?? '0') || port > 65535) {
    throw usageError(serveCommand, `port must be an integer from 0 to 65535, not "${rawPort}"`)
  }
  const backend = checkBackendSpec(
    stringFlag(ctx.flags.backend) ?? nonEmpty(env.DATASPACE_BACKEND) ?? DEFAULT_BACKEND,
  )
  // Flags win over the environment, across the two modes too: `--cluster` in a shell that
  // exports DATASPACE_FOLLOW=1 runs a cluster node, and the reverse. Both flags are an error.
  const followFlag = ctx.flags.follow === true
  const clusterFlag = ctx.flags.cluster === true
  const follow =
    followFlag || (!clusterFlag && flagFromEnv('DATASPACE_FOLLOW', env.DATASPACE_FOLLOW))
  if (follow && !isPostgresSpec(backend)) {
    throw usageError(
      serveCommand,
      `--follow needs a postgres:// backend, not "${backend}": a follower reads the PostgreSQL ` +
        'schema another server writes, and memory or SQLite is one server’s own store',
    )
  }
  const cluster =
    clusterFlag || (!followFlag && flagFromEnv('DATASPACE_CLUSTER', env.DATASPACE_CLUSTER))
  if (cluster && follow) {
    throw usageError(
      serveCommand,
      '--cluster and --follow exclude each other: a follower never writes, a cluster node ' +
        'writes in turn with the others',
    )
  }
  if (cluster && !isPostgresSpec(backend)) {
    throw usageError(
      serveCommand,
      `--cluster needs a postgres:// backend, not "${backend}": cluster nodes write one ` +
        'PostgreSQL schema together, and memory or SQLite is one server’s own store',
    )
  }
  const auth = stringFlag(ctx.flags.auth)
  const logLevel = stringFlag(ctx.flags['log-level']) ?? nonEmpty(env.DATASPACE_LOG_LEVEL) ?? 'info'
  if (!isLogLevel(logLevel)) {
    throw usageError(serveCommand, `log level must be one of ${LOG_LEVELS.join(', ')}`)
  }
  const limits = parseLimits(stringFlag(ctx.flags.limits) ?? nonEmpty(env.DATASPACE_LIMITS))
  const allowedOrigins = list(
    stringFlag(ctx.flags['allow-origin']) ?? nonEmpty(env.DATASPACE_ALLOW_ORIGIN),
  )
  const allowedHosts = list(
    stringFlag(ctx.flags['allow-host']) ?? nonEmpty(env.DATASPACE_ALLOW_HOST),
  )
  const rawTimeout =
    stringFlag(ctx.flags['shutdown-timeout']) ?? nonEmpty(env.DATASPACE_SHUTDOWN_TIMEOUT)
  const shutdownTimeoutMs =
    rawTimeout === undefined ? DEFAULT_SHUTDOWN_TIMEOUT_MS : Number(rawTimeout)
  if (!/^\d+$/.test(rawTimeout ?? '0') || shutdownTimeoutMs < 1) {
    throw usageError(
      serveCommand,
      `--shutdown-timeout must be a positive integer of ms, not "${rawTimeout}"`,
    )
  }
  return {
    ...(allowedOrigins === undefined ? {} : { allowedOrigins }),
    ...(allowedHosts === undefined ? {} : { allowedHosts }),
    host,
    port,
    backend,
    insecure: ctx.flags.insecure === true,
    follow,
    cluster,
    ...(auth ? { auth } : {}),
    logLevel,
    limits,
    shutdownTimeoutMs,
  }
}

/**
 * Resolves when `work` does, or rejects with `onTimeout()` after `ms`. `work` keeps running (a
 * backend retrying its batch cannot be stopped from here); the caller exits the process.
 */
async function withDeadline(
  work: Promise<void>,
  ms: number,
  onTimeout: () => Error,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms)
  })
  try {
    await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** The engine's byte bounds apart from the server's limits. */
function splitLimits(limits: Partial<ServerLimits & ByteBounds>): {
  engine: Partial<ByteBounds>
  server: Partial<ServerLimits>
} {
  const engine: Record<string, number> = {}
  const server: Record<string, number> = {}
  for (const [name, value] of Object.entries(limits)) {
    if ((BYTE_BOUND_NAMES as readonly string[]).includes(name)) engine[name] = value
    else server[name] = value
  }
  return { engine, server }
}

/** `name=N,name=N` → limits; unknown names and non-integers are usage errors. */
function parseLimits(text: string | undefined): Partial<ServerLimits & ByteBounds> {
  const limits: Record<string, number> = {}
  if (text === undefined) return limits
  for (const item of text.split(',')) {
    const [name = '', value = '', ...rest] = item.trim().split('=')
    if (!LIMIT_NAMES.includes(name) || rest.length > 0 || !/^\d+$/.test(value)) {
      throw usageError(
        serveCommand,
        `--limits takes NAME=N,… with NAME one of ${LIMIT_NAMES.join(', ')}; ` + `got "${item}"`,
      )
    }
    limits[name] = Number(value)
  }
  return limits
}

/** `a,b` → `['a', 'b']` (blank items dropped); `undefined` when not given. */
function list(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
}

/** A pino logger writing its JSON lines through the command's stderr. */
function stderrLogger(ctx: CommandContext, level: (typeof LOG_LEVELS)[number]): Logger {
  return pino(
    { name: 'dataspace', level },
    { write: (line: string) => ctx.io.stderr(line.endsWith('\n') ? line.slice(0, -1) : line) },
  )
}

function isLogLevel(level: string): level is (typeof LOG_LEVELS)[number] {
  return (LOG_LEVELS as readonly string[]).includes(level)
}

/** A boolean from the environment: `1` / `true`, `0` / `false` or unset; anything else is refused. */
function flagFromEnv(name: string, value: string | undefined): boolean {
  const text = nonEmpty(value)?.toLowerCase()
  if (text === undefined || text === '0' || text === 'false') return false
  if (text === '1' || text === 'true') return true
  throw usageError(serveCommand, `${name} must be 1, true, 0 or false, not "${value}"`)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
