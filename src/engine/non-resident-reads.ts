import type { BackedReads, ReadResult, ReadSpec } from './backed-reads.js'
import { viewStore } from './backed-reads.js'
import type { KindCatalog } from './kind-catalog.js'
import type { KindStore } from './kind-store.js'
import { backedPage, readContinue } from './list-page.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { Backend } from './ports/backend.js'
import type { TransactionContext } from './transaction.js'
import type { DataspaceRecord, ExplainResult, ListResult, Selector } from '../model/types.js'
import { escapeGlob } from '../query/index.js'

/** A backend that can serve non-resident kinds: it answers `query` and `explainQuery`. */
export type QueryBackend = Backend & Required<Pick<Backend, 'query' | 'explainQuery'>>

/** What the non-resident reads need of the engine. */
export interface ReadsHost {
  /** The engine's own context (the current revision, the resident stores). */
  readonly context: TransactionContext
  readonly closed: boolean
  readonly log: { warn(message: string, fields?: Record<string, unknown>): void }
}

/**
 * Reads of non-resident kinds, which the backend serves (backed-reads.ts does the I/O): the
 * reads a write needs before it is staged, the transaction context that sees what they returned,
 * and the non-resident branch of `get`, `list`, `explain`, `watch` and record messages. Without
 * a backend that answers queries every kind is resident and none of this is reached.
 */
export class NonResidentReads {
  readonly #host: ReadsHost
  readonly #catalog: KindCatalog
  readonly #backed: BackedReads | undefined
  readonly #backend: QueryBackend | undefined

  constructor(
    host: ReadsHost,
    catalog: KindCatalog,
    backed: BackedReads | undefined,
    backend: QueryBackend | undefined,
  ) {
    this.#host = host
    this.#catalog = catalog
    this.#backed = backed
    this.#backend = backend
  }

  /** The reads a write of `selector` on `kind` needs first: none for a resident kind. */
  readsFor(kind: string, selector: Selector, need: number): ReadSpec[] {
    return this.#catalog.isResident(kind) ? [] : [this.readSpec(kind, selector, need)]
  }

  /** The non-resident kinds in which `pid` holds records (an exit reads them). */
  kindsOwnedBy(pid: string): string[] {
    return this.#backed?.kindsOwnedBy(pid) ?? []
  }

  /** `compiled`: the selector already compiled by the caller (it is compiled once per call). */
  readSpec(
    kind: string,
    selector: Selector,
    need: number,
    after?: string,
    compiled?: CompiledSelector,
  ): ReadSpec {
    const source = sourceSelector(selector)
    return { kind, selector: compiled ?? this.#catalog.compile(kind, source), source, after, need }
  }

  /**
   * Runs `use` with a transaction context that sees the records `reads` name, synchronously right
   * after the read; with no reads, at once. `use` must apply whatever it stages before it returns.
   */
  withReads<R>(
    reads: readonly ReadSpec[],
    use: (context: TransactionContext, results: readonly ReadResult[]) => R,
  ): R | Promise<R> {
    if (reads.length === 0) return use(this.#host.context, [])
    return this.backed().read(reads, (results) => use(this.#viewContext(reads, results), results))
  }

  /**
   * Retries a backend read that must happen (an exit's, start-up reaping) until it succeeds or
   * the dataspace closes, with backoff, as the runtime retries writes.
   */
  async retryRead<R>(read: () => Promise<R>): Promise<R> {
    for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await read()
      } catch (error) {
        if (this.#host.closed) throw error
        this.#host.log.warn('a read of a non-resident kind failed; retrying', {
          error: String(error),
          delayMs: delay,
        })
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
  }

  /** `get` of a non-resident record. */
  get(kind: string, id: string): Promise<DataspaceRecord | undefined> {
    const read = this.readSpec(kind, { id: escapeGlob(id) }, 1)
    return this.backed().read([read], ([result]) => result?.records[0])
  }

  /** One `list` page of a non-resident kind. */
  list(
    kind: string,
    options: Selector & { readonly continue?: string | undefined },
    selector: CompiledSelector,
    limit: number | undefined,
  ): Promise<ListResult> {
    const after =
      options.continue === undefined ? undefined : readContinue(options.continue, kind, selector).a
    const need = limit === undefined ? Infinity : limit + 1
    const read = this.readSpec(kind, options, need, after, selector)
    return this.backed().read([read], ([result]) =>
      backedPage(result?.records ?? [], this.#host.context.revision, kind, selector, limit),
    )
  }

  /** How the backend would answer a query of a non-resident kind. */
  async explain(kind: string, options: Selector): Promise<ExplainResult> {
    const backend = this.#backend
    if (backend === undefined)
      throw new Error('internal: a non-resident kind without a query backend')
    const chosen = await backend.explainQuery(kind, sourceSelector(options))
    return {
      index: chosen.index,
      scanned: chosen.index === null ? 'full' : 'index',
      candidates: chosen.rows ?? 0,
      backend: { name: backend.name, detail: chosen.detail },
    }
  }

  /** A watch's snapshot of a non-resident kind, read from the backend. */
  snapshot(
    kind: string,
    options: Selector,
    selector: CompiledSelector,
    deliver: (records: DataspaceRecord[], revision: number) => void,
  ): Promise<void> {
    const read = this.readSpec(kind, options, Infinity, undefined, selector)
    return this.backed().read([read], ([result]) =>
      deliver([...(result?.records ?? [])], this.#host.context.revision),
    )
  }

  /** The non-resident record `kind/id`, for a message to its watchers. */
  record<R>(kind: string, id: string, use: (record: DataspaceRecord | undefined) => R): Promise<R> {
    const read = this.readSpec(kind, { id: escapeGlob(id) }, 1)
    return this.backed().read([read], ([result]) => use(result?.records[0]))
  }

  backed(): BackedReads {
    if (this.#backed === undefined)
      throw new Error('internal: a non-resident kind without a query backend')
    return this.#backed
  }

  /** A context whose non-resident stores are views of what the reads returned. */
  #viewContext(reads: readonly ReadSpec[], results: readonly ReadResult[]): TransactionContext {
    const byKind = new Map<string, DataspaceRecord[]>()
    for (const [i, read] of reads.entries()) {
      const records = (results[i] as ReadResult).records
      const list = byKind.get(read.kind)
      if (list === undefined) byKind.set(read.kind, [...records])
      else list.push(...records)
    }
    const views = new Map<string, KindStore>()
    for (const [kind, records] of byKind) {
      views.set(kind, viewStore(this.#catalog.storeFor(kind), records))
    }
    for (const [i, read] of reads.entries()) {
      const coveredTo = (results[i] as ReadResult).coveredTo
      if (coveredTo === undefined) continue
      const view = views.get(read.kind) as KindStore
      view.claimBounds ??= new Map()
      const bound = view.claimBounds.get(read.selector.key)
      if (bound === undefined || coveredTo < bound)
        view.claimBounds.set(read.selector.key, coveredTo)
    }
    const context = this.#host.context
    return {
      store: (kind) => views.get(kind) ?? context.store(kind),
      revision: context.revision,
      now: () => context.now(),
      ...(context.maxValueBytes === undefined ? {} : { maxValueBytes: context.maxValueBytes }),
    }
  }
}

/** A backend that can serve non-resident kinds: it answers `query` and `explainQuery`. */
export function canQuery(backend: Backend): backend is QueryBackend {
  return (
    backend.capabilities.query &&
    typeof backend.query === 'function' &&
    typeof backend.explainQuery === 'function'
  )
}

/** Only the selector part of list or watch options: what a backend query is given. */
function sourceSelector(options: Selector): Selector {
  const { id, fields, labels, owner } = options
  return {
    ...(id === undefined ? {} : { id }),
    ...(fields === undefined ? {} : { fields }),
    ...(labels === undefined ? {} : { labels }),
    ...(owner === undefined ? {} : { owner }),
  }
}
