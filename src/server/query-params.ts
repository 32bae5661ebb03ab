import type { ListOptions, Selector, WatchOptions } from '../model/index.js'
import { InvalidArgument } from '../errors/index.js'
import type { KvScanOptions, KvWatchOptions } from '../model/index.js'
import { optionKeys } from '../protocol/index.js'

// Query parameter names are the operation table's option keys: one list per operation.
const SELECTOR = optionKeys('explain')

/**
 * Reads query parameters by name, refusing any it does not know and any given twice: a typo in a
 * selector must be an error, never a silently wider result.
 */
export class QueryReader {
  readonly #query: URLSearchParams
  readonly #allowed: ReadonlySet<string>

  constructor(query: URLSearchParams, allowed: readonly string[]) {
    this.#query = query
    this.#allowed = new Set(allowed)
    for (const name of new Set(query.keys())) {
      if (!this.#allowed.has(name)) {
        throw new InvalidArgument(
          `unknown query parameter "${name}"; this route accepts ${allowed.join(', ') || 'none'}`,
        )
      }
      if (query.getAll(name).length > 1) {
        throw new InvalidArgument(`query parameter "${name}" is given more than once`)
      }
    }
  }

  string(name: string): string | undefined {
    return this.#query.get(name) ?? undefined
  }

  /** A non-negative integer parameter. */
  integer(name: string): number | undefined {
    const text = this.#query.get(name)
    if (text === null) return undefined
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new InvalidArgument(`query parameter "${name}" must be a non-negative integer`)
    }
    return Number(text)
  }

  boolean(name: string): boolean | undefined {
    const text = this.#query.get(name)
    if (text === null) return undefined
    if (text === 'true') return true
    if (text === 'false') return false
    throw new InvalidArgument(`query parameter "${name}" must be true or false`)
  }

  selector(): Selector {
    const selector: Record<string, string> = {}
    for (const name of SELECTOR) {
      const value = this.string(name)
      if (value !== undefined) selector[name] = value
    }
    return selector
  }
}

/** `?id=&fields=&labels=&owner=` — the selector of `explain`. */
export function selectorFrom(query: URLSearchParams): Selector {
  return new QueryReader(query, SELECTOR).selector()
}

/** `?id=&fields=&labels=&owner=&limit=&continue=` — exactly the `ListOptions` names. */
export function listOptionsFrom(query: URLSearchParams): ListOptions {
  const reader = new QueryReader(query, optionKeys('list'))
  const limit = reader.integer('limit')
  const token = reader.string('continue')
  return {
    ...reader.selector(),
    ...(limit === undefined ? {} : { limit }),
    ...(token === undefined ? {} : { continue: token }),
  }
}

/**
 * `?id=&fields=&labels=&owner=&fromRevision=&snapshot=`; `lastEventId` (the SSE reconnect header)
 * wins over `fromRevision`, because a browser's EventSource resends the original URL.
 */
export function watchOptionsFrom(
  query: URLSearchParams,
  lastEventId: string | undefined,
): WatchOptions {
  const reader = new QueryReader(query, [...SELECTOR, 'fromRevision', 'snapshot'])
  const fromRevision =
    lastEventId !== undefined ? revisionOf(lastEventId) : reader.integer('fromRevision')
  const snapshot = reader.boolean('snapshot')
  return {
    ...reader.selector(),
    ...(fromRevision === undefined ? {} : { fromRevision }),
    ...(snapshot === undefined ? {} : { snapshot }),
  }
}

/** `?prefix=&glob=&limit=&continue=` — a KV scan. */
export function kvScanOptionsFrom(query: URLSearchParams): KvScanOptions {
  const reader = new QueryReader(query, optionKeys('kv.scan'))
  const limit = reader.integer('limit')
  return {
    ...defined(reader, ['prefix', 'glob', 'continue']),
    ...(limit === undefined ? {} : { limit }),
  }
}

/** `?prefix=&glob=&fromRevision=` — a KV watch; `lastEventId` wins over `fromRevision`. */
export function kvWatchOptionsFrom(
  query: URLSearchParams,
  lastEventId: string | undefined,
): KvWatchOptions {
  const reader = new QueryReader(query, optionKeys('kv.watch'))
  const fromRevision =
    lastEventId !== undefined ? revisionOf(lastEventId) : reader.integer('fromRevision')
  return {
    ...defined(reader, ['prefix', 'glob']),
    ...(fromRevision === undefined ? {} : { fromRevision }),
  }
}

function defined(reader: QueryReader, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of names) {
    const value = reader.string(name)
    if (value !== undefined) out[name] = value
  }
  return out
}

function revisionOf(lastEventId: string): number {
  if (!/^\d+$/.test(lastEventId) || !Number.isSafeInteger(Number(lastEventId))) {
    throw new InvalidArgument('Last-Event-ID must be a revision (a non-negative integer)')
  }
  return Number(lastEventId)
}
