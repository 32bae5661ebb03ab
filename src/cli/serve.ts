import { pino } from 'pino'
import type { Logger } from 'pino'
import { checkBackendSpec, DEFAULT_BACKEND, parseBackend } from './backend-spec.js'
import { createServer, DEFAULT_LIMITS, DEFAULT_PORT, loadTokenFile } from '../server/index.js'
import type { ServerLimits } from '../server/index.js'
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
  readonly auth?: string
  readonly logLevel: (typeof LOG_LEVELS)[number]
  /** Server limits given with `--limits` / `DATASPACE_LIMITS`; the rest keep their defaults. */
  readonly limits: Partial<ServerLimits>
}

/**
 * `serve`: an embedded dataspace behind the server. Prints one line
 * `dataspace listening on http://HOST:PORT` on stdout, and JSON log lines (pino) on stderr. On
 * SIGTERM / SIGINT it shuts down gracefully: stops accepting, sends `goodbye` to WebSocket
 * clients, ends SSE streams and sessions, lets in-flight requests finish, closes the
 * dataspace, and returns (exit 0).
 */
export const serveCommand: Command = {
  name: 'serve',
  usage:
    'serve [--host H] [--port P] [--backend sqlite[:PATH]|memory|postgres://…] ' +
    '[--auth TOKENS.json] [--insecure] ' +
    '[--log-level info] [--limits NAME=N,…]',
  summary: 'run the server with an embedded dataspace',
  details: [
    '--host H        DATASPACE_HOST       default 127.0.0.1',
    '--port P        DATASPACE_PORT       default 7411; 0 picks a free port',
    '--backend SPEC  DATASPACE_BACKEND    default sqlite (./.dataspace/dataspace.db); or memory,',
    '                                     sqlite:PATH, postgres://USER@HOST/DB[?schema=NAME]',
    '--auth FILE                          a token file (docs/server.md); default: no auth',
    '--insecure                           allow a non-loopback --host without --auth',
    '--log-level L   DATASPACE_LOG_LEVEL  default info; fatal, error, warn, debug, trace, silent',
    '--limits N=V,…  DATASPACE_LIMITS     server limits by name (docs/server.md)',
    '',
    'Flags win over the environment. Once listening, prints "dataspace listening on URL" on',
    'stdout; JSON logs go to stderr. SIGTERM or SIGINT shuts down gracefully (exit 0).',
  ],
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    backend: { type: 'string' },
    auth: { type: 'string' },
    insecure: { type: 'boolean' },
    'log-level': { type: 'string' },
    limits: { type: 'string' },
  },
  arity: [0, 0],
  async run(ctx) {
    const settings = serveSettings(ctx)
    const auth = settings.auth === undefined ? undefined : await loadTokenFile(settings.auth)
    const logger = stderrLogger(ctx, settings.logLevel)
    const backend = await parseBackend(settings.backend)
    const ds = await backend.open({
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
        limits: settings.limits,
        ...(auth === undefined ? {} : { auth }),
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
    await server.close()
    await ds.close()
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
  const auth = stringFlag(ctx.flags.auth)
  const logLevel = stringFlag(ctx.flags['log-level']) ?? nonEmpty(env.DATASPACE_LOG_LEVEL) ?? 'info'
  if (!isLogLevel(logLevel)) {
    throw usageError(serveCommand, `log level must be one of ${LOG_LEVELS.join(', ')}`)
  }
  const limits = parseLimits(stringFlag(ctx.flags.limits) ?? nonEmpty(env.DATASPACE_LIMITS))
  return {
    host,
    port,
    backend,
    insecure: ctx.flags.insecure === true,
    ...(auth ? { auth } : {}),
    logLevel,
    limits,
  }
}

/** `name=N,name=N` → limits; unknown names and non-integers are usage errors. */
function parseLimits(text: string | undefined): Partial<ServerLimits> {
  const limits: Record<string, number> = {}
  if (text === undefined) return limits
  for (const item of text.split(',')) {
    const [name = '', value = '', ...rest] = item.trim().split('=')
    if (!Object.hasOwn(DEFAULT_LIMITS, name) || rest.length > 0 || !/^\d+$/.test(value)) {
      throw usageError(
        serveCommand,
        `--limits takes NAME=N,… with NAME one of ${Object.keys(DEFAULT_LIMITS).join(', ')}; ` +
          `got "${item}"`,
      )
    }
    limits[name] = Number(value)
  }
  return limits
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

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
