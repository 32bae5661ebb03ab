import type {
  CloseReason,
  DataspaceApi,
  DataspaceRecord,
  RetractReason,
  Watch,
  WatchResetReason,
} from '../../src/index.js'
import { API_ROUTE_KIND, parseApiRoute } from './route-kind.js'
import type { ApiRoute, HttpMethod } from './route-kind.js'

/** A route as the server serves it: the record's validated data plus who asserted it. */
export interface ServedRoute extends ApiRoute {
  /** The record id (`api.route` ids are chosen by the subsystem). */
  readonly id: string
  /** The pid of the subsystem that owns the route, or `null` for a durable route. */
  readonly owner: string | null
  /** The revision of the commit that last wrote the record. */
  readonly revision: number
  readonly createdRevision: number
}

/** What changed in the table, for logging. One watch event may yield several changes. */
export type RouteChange =
  | { readonly type: 'rebuilt'; readonly routes: readonly ServedRoute[]; readonly revision: number }
  | { readonly type: 'added'; readonly route: ServedRoute }
  | { readonly type: 'updated'; readonly route: ServedRoute; readonly previous: ServedRoute }
  | { readonly type: 'removed'; readonly route: ServedRoute; readonly reason: RetractReason }
  | {
      readonly type: 'invalid'
      readonly id: string
      readonly owner: string | null
      readonly message: string
    }
  | { readonly type: 'reset'; readonly reason: WatchResetReason }

/** Options of {@link RouteTable.open}. */
export interface RouteTableOptions {
  /** Called synchronously for every change, in commit order. */
  readonly onChange?: (change: RouteChange) => void
}

/**
 * The API server's view of every `api.route` record, kept live by one watch: a `snapshot`
 * rebuilds it, `asserted` adds or replaces, `retracted` removes. Because a process's routes
 * are retracted in the commit that ends it, a route never outlives the subsystem serving it.
 *
 * When two records claim the same method and path, the one created first wins and the other
 * waits behind it: if the winner's subsystem dies, the next one takes over without a restart.
 *
 * @example
 * const table = await RouteTable.open(ds, { onChange: (c) => console.log(c.type) })
 * table.lookup('GET', '/health')?.owner // 'local/health#1'
 * await table.close()
 */
export class RouteTable {
  readonly #watch: Watch
  readonly #onChange: ((change: RouteChange) => void) | undefined
  readonly #byId = new Map<string, ServedRoute>()
  /** Every route at a path, in precedence order (created first wins). */
  readonly #byPath = new Map<string, ServedRoute[]>()
  readonly #ready: Promise<void>
  #markReady!: () => void
  #revision = 0
  /** Settles with the watch's close reason once the event loop has stopped. */
  readonly closed: Promise<CloseReason>

  private constructor(ds: Pick<DataspaceApi, 'watch'>, options: RouteTableOptions) {
    this.#onChange = options.onChange
    this.#ready = new Promise((resolve) => {
      this.#markReady = resolve
    })
    this.#watch = ds.watch(API_ROUTE_KIND)
    this.closed = this.#run()
  }

  /** Opens a table on `ds` and resolves once the initial snapshot is applied. */
  static async open(
    ds: Pick<DataspaceApi, 'watch'>,
    options: RouteTableOptions = {},
  ): Promise<RouteTable> {
    const table = new RouteTable(ds, options)
    // Whichever comes first: the snapshot, or the watch ending before it (a closed dataspace).
    const outcome = await Promise.race([
      table.#ready.then(() => 'ready' as const),
      table.closed.then((reason) => ({ ended: reason })),
    ])
    if (outcome !== 'ready') {
      throw new Error(`the api.route watch ended before its snapshot: ${describe(outcome.ended)}`)
    }
    return table
  }

  /** The revision of the last event applied. */
  get revision(): number {
    return this.#revision
  }

  /** The route that answers `method path`, if any. */
  lookup(method: string, path: string): ServedRoute | undefined {
    return this.#byPath.get(path)?.find((route) => route.method === method)
  }

  /** The methods served at `path` (empty when nothing is): the `Allow` header of a 405. */
  methodsAt(path: string): HttpMethod[] {
    return [...new Set((this.#byPath.get(path) ?? []).map((route) => route.method))]
  }

  /** Every route currently in the table, ordered by path. */
  routes(): ServedRoute[] {
    return [...this.#byPath.keys()].sort().flatMap((path) => this.#byPath.get(path) ?? [])
  }

  /** Stops watching; the table empties, since it can no longer vouch for its routes. */
  async close(): Promise<void> {
    this.#watch.close()
    await this.closed
  }

  async #run(): Promise<CloseReason> {
    try {
      for await (const event of this.#watch) {
        switch (event.type) {
          case 'snapshot':
            this.#rebuild(event.records, event.revision)
            this.#markReady()
            break
          case 'asserted':
            this.#put(event.record)
            this.#revision = event.revision
            break
          case 'retracted':
            this.#remove(event.record.id, event.reason)
            this.#revision = event.revision
            break
          case 'reset':
            // The engine dropped events for us; the snapshot that follows replaces the table.
            this.#emit({ type: 'reset', reason: event.reason })
            break
          case 'message':
            break
          default:
            event satisfies never
        }
      }
    } finally {
      this.#byId.clear()
      this.#byPath.clear()
    }
    return this.#watch.closed
  }

  #rebuild(records: readonly DataspaceRecord[], revision: number): void {
    this.#byId.clear()
    this.#byPath.clear()
    for (const record of records) this.#put(record, true)
    this.#revision = revision
    this.#emit({ type: 'rebuilt', routes: this.routes(), revision })
  }

  #put(record: DataspaceRecord, quiet = false): void {
    const previous = this.#byId.get(record.id)
    const parsed = parseApiRoute(record.data)
    if (!parsed.ok) {
      // An invalid write must not leave the old version serving as if nothing happened.
      if (previous !== undefined) this.#unlink(previous)
      this.#emit({ type: 'invalid', id: record.id, owner: record.owner, message: parsed.message })
      return
    }
    const route: ServedRoute = Object.freeze({
      ...parsed.route,
      id: record.id,
      owner: record.owner,
      revision: record.revision,
      createdRevision: record.createdRevision,
    })
    if (previous !== undefined) this.#unlink(previous)
    this.#byId.set(route.id, route)
    const atPath = this.#byPath.get(route.path) ?? []
    atPath.push(route)
    atPath.sort(byPrecedence)
    this.#byPath.set(route.path, atPath)
    if (quiet) return
    this.#emit(
      previous === undefined ? { type: 'added', route } : { type: 'updated', route, previous },
    )
  }

  #remove(id: string, reason: RetractReason): void {
    const route = this.#byId.get(id)
    if (route === undefined) return // it was invalid, so never served
    this.#unlink(route)
    this.#emit({ type: 'removed', route, reason })
  }

  #unlink(route: ServedRoute): void {
    this.#byId.delete(route.id)
    const rest = (this.#byPath.get(route.path) ?? []).filter((other) => other.id !== route.id)
    if (rest.length === 0) this.#byPath.delete(route.path)
    else this.#byPath.set(route.path, rest)
  }

  #emit(change: RouteChange): void {
    // A logging callback that throws must not stop the table from following the dataspace.
    try {
      this.#onChange?.(change)
    } catch (error) {
      console.error('api-routes: onChange threw', error)
    }
  }
}

function byPrecedence(a: ServedRoute, b: ServedRoute): number {
  return a.createdRevision - b.createdRevision || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

function describe(reason: CloseReason): string {
  return typeof reason === 'string' ? reason : String(reason.error)
}
