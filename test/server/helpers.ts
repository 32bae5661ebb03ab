import { createDataspace } from '../../src/index.js'
import type { Dataspace, DataspaceRecord } from '../../src/index.js'
import { pino } from 'pino'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer, ServerOptions } from '../../src/server/index.js'

type Data = Readonly<Record<string, unknown>>

/**
 * Every field any response body of the API has, in one bag: tests read the field they expect
 * and the assertions check it, instead of narrowing a union at every step.
 */
export interface Body extends Omit<DataspaceRecord<Data>, 'expiresAt'> {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly currentRevision: number
    readonly owner: string
    readonly holder: string
    readonly position: number
    readonly issues: readonly unknown[]
  }
  readonly items: readonly DataspaceRecord<Data>[]
  readonly continue: string
  readonly results: readonly unknown[]
  readonly record: DataspaceRecord<Data>
  readonly key: string
  readonly value: unknown
  readonly entries: readonly { readonly key: string }[]
  readonly deleted: boolean
  readonly delivered: number
  readonly members: readonly string[]
  readonly names: readonly { readonly name: string }[]
  readonly result: string
  readonly fence: number
}

/** Every field any SSE event's data has, in one bag (see {@link Body}). */
export interface EventData {
  readonly type: string
  readonly revision: number
  readonly records: readonly DataspaceRecord<Data>[]
  readonly record: DataspaceRecord<Data>
  readonly previous: DataspaceRecord<Data>
  readonly reason: string
  readonly key: string
  readonly isUpdate: boolean
  readonly groups: Readonly<Record<string, readonly string[]>>
  readonly pids: readonly string[]
}

/** A server on 127.0.0.1:0 over a fresh dataspace, with small fetch helpers. */
export interface Harness {
  readonly ds: Dataspace
  readonly server: DataspaceServer
  readonly url: string
  /** A JSON request; `session` becomes the Dataspace-Session header. */
  call(
    method: string,
    path: string,
    options?: { body?: unknown; session?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: Body; headers: Headers }>
  /** Opens a session → `{ session, pid, ttl, resumeToken }`. */
  session(
    name?: string,
    ttl?: number,
  ): Promise<{ session: string; pid: string; ttl: number; resumeToken: string }>
  close(): Promise<void>
}

export async function start(options: Omit<ServerOptions, 'ds'> = {}): Promise<Harness> {
  const ds = createDataspace()
  // Silent unless a test passes its own logger (tests must not write logs).
  const server = await createServer({ ds, port: 0, logger: pino({ level: 'silent' }), ...options })
  const harness: Harness = {
    ds,
    server,
    url: server.url,
    async call(method, path, { body, session, headers = {} } = {}) {
      const res = await fetch(server.url + path, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(session === undefined ? {} : { 'dataspace-session': session }),
          ...headers,
        },
        ...(body === undefined
          ? {}
          : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      const text = await res.text()
      return {
        status: res.status,
        body: (text === '' ? undefined : JSON.parse(text)) as Body,
        headers: res.headers,
      }
    },
    async session(name = 'client', ttl) {
      const res = await harness.call('POST', '/v1/sessions', {
        body: ttl === undefined ? { name } : { name, ttl },
      })
      if (res.status !== 201) throw new Error(`session: ${res.status} ${JSON.stringify(res.body)}`)
      return res.body as unknown as {
        session: string
        pid: string
        ttl: number
        resumeToken: string
      }
    },
    async close() {
      await server.close()
      await ds.close()
    },
  }
  return harness
}

/** One parsed server-sent event. */
export interface SseEvent {
  readonly event: string
  readonly id: string | undefined
  readonly data: EventData
}

/** An SSE response read event by event. */
export interface SseReader {
  readonly status: number
  readonly headers: Headers
  /** The next event, failing after `ms`; `undefined` when the stream ended. */
  next(ms?: number): Promise<SseEvent | undefined>
  /** Events until the stream has been quiet for `quietMs`. */
  drain(quietMs?: number): Promise<SseEvent[]>
  /** Comment lines seen so far (heartbeats). */
  readonly comments: string[]
  close(): void
}

export async function openSse(
  url: string,
  headers: Record<string, string> = {},
): Promise<SseReader> {
  const abort = new AbortController()
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  })
  const queue: (SseEvent | undefined)[] = []
  const comments: string[] = []
  let wake: (() => void) | undefined
  // A failure of the reading loop itself, thrown by next() so the test sees it.
  let failure: unknown
  const push = (event: SseEvent | undefined): void => {
    queue.push(event)
    wake?.()
  }
  if (res.body !== null && res.headers.get('content-type')?.startsWith('text/event-stream')) {
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true })
          let end: number
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            let event = 'message'
            let id: string | undefined
            const data: string[] = []
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments.push(line)
              else if (line.startsWith('event: ')) event = line.slice(7)
              else if (line.startsWith('id: ')) id = line.slice(4)
              else if (line.startsWith('data: ')) data.push(line.slice(6))
            }
            if (data.length > 0) push({ event, id, data: JSON.parse(data.join('\n')) as EventData })
          }
        }
      } catch {
        // aborted by close()
      }
      push(undefined)
    })().catch((error: unknown) => {
      failure = error
      push(undefined)
    })
  }
  const reader: SseReader = {
    status: res.status,
    headers: res.headers,
    comments,
    async next(ms = 2000) {
      const deadline = Date.now() + ms
      while (queue.length === 0) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`no SSE event within ${ms} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        wake = undefined
      }
      if (queue[0] === undefined && failure !== undefined) {
        throw failure instanceof Error
          ? failure
          : new Error('the SSE reader failed', { cause: failure })
      }
      return queue.shift()
    },
    async drain(quietMs = 50) {
      const events: SseEvent[] = []
      for (;;) {
        try {
          const event = await reader.next(quietMs)
          if (event === undefined) return events
          events.push(event)
        } catch {
          return events
        }
      }
    },
    close() {
      abort.abort()
    },
  }
  return reader
}

/** Polls `check` until it is truthy, failing after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms = 2000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** The value of one series of a `/metrics` scrape, e.g. `dataspace_cluster_nodes` (or absent). */
export function seriesValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** `dataspace_limit_hits_total{limit}` as scraped from the server's `/metrics` (0 if absent). */
export async function limitHits(
  url: string,
  limit: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text()
  return seriesValue(text, `dataspace_limit_hits_total{limit="${limit}"}`) ?? 0
}
