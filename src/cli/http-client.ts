/** Default address of a local server, shared by `serve` and the client commands. */
export const DEFAULT_URL = 'http://127.0.0.1:7411'

/**
 * A failure the CLI reports as one line `error: <code>: <message>`. `code` is the wire error's
 * code when the server answered with one, `InvalidArgument` for usage mistakes and `Unavailable`
 * when the server cannot be reached.
 */
export class CliError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'CliError'
  }
}

/** A mistake in the command line itself (exit code 2): always `InvalidArgument`. */
export class UsageError extends CliError {
  constructor(message: string) {
    super('InvalidArgument', message)
    this.name = 'UsageError'
  }
}

/** Query values; `undefined` entries are left out, so optional flags pass straight through. */
export type Query = Readonly<Record<string, string | number | undefined>>

/** One server-sent event: its `event:` name, `data:` parsed as JSON, and `id:` if any. */
export interface SseEvent {
  readonly event: string
  readonly data: unknown
  readonly id?: string
}

interface RequestOptions {
  readonly query?: Query
  readonly body?: unknown
  readonly session?: string
  readonly signal?: AbortSignal
}

/**
 * A thin client over the HTTP API (`docs/protocol.md`) with global `fetch`. It maps every wire
 * error to a {@link CliError} carrying the same code; it never reads message text.
 */
export class HttpClient {
  readonly #url: string
  readonly #token: string | undefined

  constructor(url: string, token?: string) {
    this.#url = url.replace(/\/+$/, '')
    this.#token = token
  }

  /** A JSON request; answers the parsed body, or `undefined` for `204`. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const res = await this.#fetch(method, path, options, headers)
    if (res.status === 204) return undefined
    const body: unknown = await res.json().catch(() => undefined)
    if (!res.ok) throw wireError(res.status, body)
    return body
  }

  /** Streams a watch route as SSE events until the server ends it or `signal` aborts. */
  async *events(path: string, query: Query, signal: AbortSignal): AsyncGenerator<SseEvent> {
    const headers = { accept: 'text/event-stream' }
    const res = await this.#fetch('GET', path, { query, signal }, headers)
    if (!res.ok || res.body === null) {
      throw wireError(res.status, await res.json().catch(() => undefined))
    }
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true })
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = parseBlock(block)
          if (event !== undefined) yield event
        }
      }
    } catch (error) {
      if (signal.aborted) return
      throw error
    }
  }

  /**
   * Opens a session (`POST /v1/sessions`), runs `fn` with its id, and always ends the session
   * afterwards, so a one-shot command never leaves a process behind.
   */
  async withSession<T>(fn: (session: string) => Promise<T>): Promise<T> {
    const opened = (await this.request('POST', '/v1/sessions', { body: { name: 'cli' } })) as {
      session: string
    }
    try {
      return await fn(opened.session)
    } finally {
      await this.request('DELETE', `/v1/sessions/${encodeURIComponent(opened.session)}`)
    }
  }

  async #fetch(
    method: string,
    path: string,
    options: RequestOptions,
    headers: Record<string, string>,
  ): Promise<Response> {
    const url = new URL(this.#url + path)
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value))
    }
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`
    if (options.session !== undefined) headers['dataspace-session'] = options.session
    const init: RequestInit = { method, headers }
    if (options.body !== undefined) init.body = JSON.stringify(options.body)
    if (options.signal !== undefined) init.signal = options.signal
    try {
      return await fetch(url, init)
    } catch (error) {
      if (options.signal?.aborted === true) throw error
      const cause = (error as { cause?: { code?: string; message?: string } }).cause
      const why = cause?.code ?? cause?.message ?? (error as Error).message
      throw new CliError('Unavailable', `cannot reach ${this.#url}: ${why}`, { cause: error })
    }
  }
}

/** Builds a path from segments, percent-encoding each one (`a/b` as an id becomes `a%2Fb`). */
export function path(...segments: readonly string[]): string {
  return segments.map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join('/')
}

function wireError(status: number, body: unknown): CliError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
  if (typeof error?.code === 'string') {
    return new CliError(error.code, typeof error.message === 'string' ? error.message : '')
  }
  return new CliError('Internal', `unexpected HTTP ${status} from the server`)
}

function parseBlock(block: string): SseEvent | undefined {
  let event = 'message'
  let id: string | undefined
  const data: string[] = []
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
    else if (field === 'id') id = value
  }
  if (data.length === 0) return undefined
  const parsed: unknown = JSON.parse(data.join('\n'))
  return id === undefined ? { event, data: parsed } : { event, data: parsed, id }
}
