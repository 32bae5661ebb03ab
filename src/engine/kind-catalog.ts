import { InvalidArgument } from '../errors/index.js'
import type { KindOptions, Selector } from '../model/types.js'
import { checkKind, describe } from '../model/validate.js'
import type { CompiledSelector } from './compiled-selector.js'
import { compileSelector } from './compiled-selector.js'
import { KindStore } from './kind-store.js'
import type { StoredKind } from './ports/backend.js'

/**
 * The kind catalog: one {@link KindStore} per kind (its records, indexes, schema, declared fields
 * and residency), the declarations that shape them, and selectors compiled against them.
 */
export class KindCatalog {
  readonly #stores = new Map<string, KindStore>()
  /** Whether a backend that answers queries can hold non-resident kinds. */
  readonly #nonResident: boolean
  /** Records a declaration with the durable backend (none in memory). */
  readonly #declare: ((kind: StoredKind) => void) | undefined

  constructor(nonResident: boolean, declare: ((kind: StoredKind) => void) | undefined) {
    this.#nonResident = nonResident
    this.#declare = declare
  }

  get(kind: string): KindStore | undefined {
    return this.#stores.get(kind)
  }

  /** The store of `kind`, created on first write. */
  storeFor(kind: string): KindStore {
    let store = this.#stores.get(kind)
    if (store === undefined) this.#stores.set(kind, (store = new KindStore(kind)))
    return store
  }

  stores(): Iterable<KindStore> {
    return this.#stores.values()
  }

  get size(): number {
    return this.#stores.size
  }

  /** How many resident records every kind holds. */
  get recordCount(): number {
    let records = 0
    for (const store of this.#stores.values()) records += store.size
    return records
  }

  /** False only for a kind declared `resident: false` (served by the backend). */
  isResident(kind: string): boolean {
    return this.#stores.get(kind)?.resident !== false
  }

  /** The synchronous reads (`observe`, `query`) serve resident kinds only. */
  checkResident(kind: string, what: string): void {
    if (!this.isResident(kind)) {
      throw new InvalidArgument(`${what} reads resident kinds only; ${kind} is non-resident`)
    }
  }

  /** Compiles a selector against the kind's declared fields. */
  compile(kind: string, selector: Selector): CompiledSelector {
    return compileSelector(selector, this.#stores.get(kind)?.closedFields)
  }

  /** Declares `kind` (its fields, indexes, schema and residency); the backend records it too. */
  define<T>(kind: string, options: KindOptions<T>): void {
    checkKind(kind)
    const fields = options.fields === undefined ? undefined : checkPaths('fields', options.fields)
    const indexes = checkPaths('indexes', options.indexes ?? [])
    if (fields !== undefined) {
      const undeclared = indexes.filter((path) => !fields.includes(path))
      if (undeclared.length > 0)
        throw new InvalidArgument(
          `indexes ${undeclared.join(', ')} are not among the declared fields`,
        )
    }
    if (
      options.schema !== undefined &&
      typeof options.schema['~standard']?.validate !== 'function'
    ) {
      throw new InvalidArgument(
        'schema must be a Standard Schema validator (zod, valibot, arktype, …)',
      )
    }
    const resident = this.#residency(kind, options.resident)
    const store = this.storeFor(kind)
    store.schema = options.schema
    store.closedFields = fields === undefined ? undefined : new Set(fields)
    store.resident = resident
    // A non-resident kind's indexes are the backend's; in memory they only shape claim views.
    store.setIndexes(indexes)
    this.#declare?.({
      kind,
      ...(fields === undefined ? {} : { fields }),
      indexes,
      ...(resident ? {} : { resident: false }),
    })
  }

  /**
   * Whether declaring `kind` with `options` would change nothing that is stored: the same
   * fields, indexes and residency (a schema is the caller's own). A follower accepts such a
   * declaration, so that code declaring its kinds at start runs there too.
   */
  declares<T>(kind: string, options: KindOptions<T>): boolean {
    // The same checks as `define`: bad input is `InvalidArgument` on a follower too.
    checkKind(kind)
    const fields = options.fields === undefined ? undefined : checkPaths('fields', options.fields)
    const indexes = checkPaths('indexes', options.indexes ?? [])
    const store = this.#stores.get(kind)
    if (store === undefined) return false
    const sameFields =
      fields === undefined
        ? store.closedFields === undefined
        : store.closedFields !== undefined && sameSet(fields, store.closedFields)
    const sameResidency = options.resident === undefined || options.resident === store.resident
    return sameFields && sameResidency && sameSet(indexes, store.fieldIndexes.keys())
  }

  /** Re-creates a kind the backend stored (start-up): its fields, indexes and residency. */
  restore(kind: StoredKind): void {
    const store = this.storeFor(kind.kind)
    store.closedFields = kind.fields === undefined ? undefined : new Set(kind.fields)
    store.setIndexes([...kind.indexes])
    if (kind.resident === false && this.#nonResident) store.resident = false
  }

  /**
   * Whether `kind` stays resident after a declaration asking for `wanted`. Residency is set
   * before the kind holds records and never changes: the engine cannot hand records to a backend
   * it never loaded them from, or load a table it was told is too large. Without a backend that
   * answers queries every kind is resident (docs/backends.md), so `resident: false` is accepted
   * and has no effect.
   */
  #residency(kind: string, wanted: unknown): boolean {
    if (wanted !== undefined && typeof wanted !== 'boolean') {
      throw new InvalidArgument(`resident must be a boolean, got ${describe(wanted)}`)
    }
    const store = this.#stores.get(kind)
    const current = store?.resident ?? true
    if (!this.#nonResident || wanted === undefined || wanted === current) return current
    if (!current) {
      throw new InvalidArgument(
        `${kind} is non-resident; a kind's residency cannot change once declared`,
      )
    }
    if (store !== undefined && store.size > 0) {
      throw new InvalidArgument(
        `${kind} already holds ${store.size} records in memory; declare resident: false before its first record`,
      )
    }
    return false
  }
}

function checkPaths(name: string, paths: readonly string[]): string[] {
  if (!Array.isArray(paths)) throw new InvalidArgument(`${name} must be an array of data paths`)
  for (const path of paths) {
    if (
      typeof path !== 'string' ||
      path.length === 0 ||
      path.split('.').some((segment) => segment.length === 0)
    ) {
      throw new InvalidArgument(`${name}: ${JSON.stringify(path)} is not a dotted data path`)
    }
  }
  return [...new Set<string>(paths)]
}

function sameSet(list: readonly string[], other: Iterable<string>): boolean {
  const mine = new Set(list)
  const theirs = new Set(other)
  return mine.size === theirs.size && [...mine].every((item) => theirs.has(item))
}
