import { createDataspace } from '../engine/index.js'
import { createServer, DEFAULT_PORT, loadTokenFile } from '../server/index.js'
import { stringFlag, usageError } from './command.js'
import type { Command, CommandContext } from './command.js'
import { CliError } from './http-client.js'

/** Storage behind `serve`. Only `memory` exists until the durable backends land. */
export const BACKENDS = ['memory'] as const

/** The resolved `serve` settings: flags win over `DATASPACE_*` env, env over defaults. */
export interface ServeSettings {
  readonly host: string
  readonly port: number
  readonly backend: (typeof BACKENDS)[number]
  readonly insecure: boolean
  readonly auth?: string
}

/**
 * `serve`: an embedded dataspace behind the HTTP/SSE server. Prints one line
 * `dataspace listening on http://HOST:PORT`; on SIGTERM / SIGINT closes the server, then the
 * dataspace, and returns (exit 0).
 */
export const serveCommand: Command = {
  name: 'serve',
  usage: 'serve [--host H] [--port P] [--backend memory] [--auth TOKENS.json] [--insecure]',
  summary: 'run the server with an embedded dataspace',
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    backend: { type: 'string' },
    auth: { type: 'string' },
    insecure: { type: 'boolean' },
  },
  arity: [0, 0],
  async run(ctx) {
    const settings = serveSettings(ctx)
    const auth = settings.auth === undefined ? undefined : await loadTokenFile(settings.auth)
    const ds = createDataspace()
    let server
    try {
      server = await createServer({
        ds,
        host: settings.host,
        port: settings.port,
        insecure: settings.insecure,
        ...(auth === undefined ? {} : { auth }),
      })
    } catch (error) {
      await ds.close()
      throw error
    }
    ctx.io.stdout(`dataspace listening on ${server.url}`)
    if (!ctx.signal.aborted) {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
    }
    await server.close()
    await ds.close()
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
  const backend = stringFlag(ctx.flags.backend) ?? nonEmpty(env.DATASPACE_BACKEND) ?? 'memory'
  if (!isBackend(backend)) {
    throw new CliError(
      'InvalidArgument',
      `unknown backend "${backend}": only ${BACKENDS.join(', ')} exists until durable backends land`,
    )
  }
  const auth = stringFlag(ctx.flags.auth)
  return { host, port, backend, insecure: ctx.flags.insecure === true, ...(auth ? { auth } : {}) }
}

function isBackend(name: string): name is (typeof BACKENDS)[number] {
  return (BACKENDS as readonly string[]).includes(name)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
