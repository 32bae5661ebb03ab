import { openDataspace } from '../dataspace.js'
import type { BackendSpec } from './opened-backend.js'
import { CliError } from './http-client.js'

/**
 * A `postgres://` / `postgresql://` `--backend`: the PostgreSQL backend, schema `dataspace` unless
 * the URL has `?schema=NAME`. Every failure, from a URL that does not parse to a database that
 * refuses us, becomes one `CliError` naming PostgreSQL, the host and the database — the driver's
 * own messages (`connect ECONNREFUSED 127.0.0.1:5433`, `database "x" does not exist`) do not
 * say which backend was being opened, and a URL's password must never reach a log or a terminal.
 * `follow`: open the schema as a follower of the server that writes it (`serve --follow`);
 * `cluster`: as a node of a cluster, one of several servers that write it (`serve --cluster`).
 */
export async function postgresSpec(
  spec: string,
  { follow = false, cluster = false }: { follow?: boolean; cluster?: boolean } = {},
): Promise<BackendSpec> {
  let url: URL
  try {
    url = new URL(spec)
  } catch {
    throw new CliError(
      'InvalidArgument',
      `--backend ${redact(spec)} is not a valid PostgreSQL URL: use postgres://USER@HOST[:PORT]/DB`,
    )
  }
  // Loaded only when asked for: `pg` stays out of a SQLite or memory server.
  const { postgresBackend } = await import('../backends/postgres/index.js')
  // `?schema=NAME` picks the schema (default `dataspace`); the rest of the URL goes to `pg`.
  const schema = url.searchParams.get('schema') ?? undefined
  url.searchParams.delete('schema')
  const tuning = numericParams(url)
  const target = describe(url, schema)
  const backendOptions = {
    url: url.toString(),
    ...(schema === undefined ? {} : { schema }),
    ...(follow ? { follow } : {}),
    ...(cluster ? { cluster } : {}),
    ...tuning,
  }
  try {
    // Checks the options now (nothing connects yet), so that a bad one is a usage error.
    postgresBackend(backendOptions)
  } catch (error) {
    throw new CliError('InvalidArgument', `--backend ${redact(spec)}: ${(error as Error).message}`)
  }
  return {
    label:
      `postgres:${redact(url.toString())}${schema === undefined ? '' : ` schema ${schema}`}` +
      (follow ? ' (follower)' : '') +
      (cluster ? ' (cluster node)' : ''),
    async open(options) {
      try {
        return await openDataspace({
          ...options,
          backend: postgresBackend({
            ...backendOptions,
            // Pool errors, a follower's LISTEN reconnects, failed doorbells and feed trims: the
            // backend retries each; the operator should still see them.
            onError: (error) =>
              options?.log?.warn('postgres backend error', { error: error.message }),
          }),
        })
      } catch (error) {
        throw new CliError('Unavailable', `cannot open ${target}: ${reason(error, url)}`, {
          cause: error,
        })
      }
    },
  }
}

/**
 * The backend's numeric options a URL may carry (`?queryTimeoutMs=5000&feedRetentionMs=…`),
 * taken out of it (they are ours, not `pg`'s); `Infinity` turns a bound off.
 */
const NUMERIC_PARAMS = [
  'queryTimeoutMs',
  'feedRetentionMs',
  'feedMaxRevisions',
  'feedTrimIntervalMs',
  'feedTrimRows',
] as const

function numericParams(url: URL): Partial<Record<(typeof NUMERIC_PARAMS)[number], number>> {
  const options: Partial<Record<(typeof NUMERIC_PARAMS)[number], number>> = {}
  for (const name of NUMERIC_PARAMS) {
    const text = url.searchParams.get(name)
    if (text === null) continue
    url.searchParams.delete(name)
    const value = text === 'Infinity' ? Infinity : /^\d+$/.test(text) ? Number(text) : NaN
    if (Number.isNaN(value)) {
      throw new CliError(
        'InvalidArgument',
        `--backend: ${name} must be a whole number or Infinity; got ${JSON.stringify(text)}`,
      )
    }
    options[name] = value
  }
  return options
}

/** `PostgreSQL database "db" on host:port as user` (schema too when not the default). */
function describe(url: URL, schema: string | undefined): string {
  const database = decodeURIComponent(url.pathname.slice(1)) || '(the user’s default)'
  const user = url.username === '' ? '' : ` as ${decodeURIComponent(url.username)}`
  const where = `${url.hostname || 'localhost'}:${url.port || '5432'}`
  const inSchema = schema === undefined ? '' : `, schema "${schema}"`
  return `PostgreSQL database "${database}"${inSchema} on ${where}${user}`
}

/** The driver's message, with the URL's password removed should it ever appear in it. */
function reason(error: unknown, url: URL): string {
  const err = error as { message?: unknown; code?: unknown }
  let message = typeof err.message === 'string' && err.message !== '' ? err.message : String(error)
  for (const secret of [url.password, decodeURIComponent(url.password)]) {
    if (secret !== '') message = message.split(secret).join('***')
  }
  return typeof err.code === 'string' && !message.includes(err.code)
    ? `${message} (${err.code})`
    : message
}

/** The URL with any `user:password@` reduced to `user:***@`. */
function redact(spec: string): string {
  return spec.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}
