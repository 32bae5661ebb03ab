import type { ProcessGroupsApi } from './groups.js'
import type { KvApi } from './kv.js'
import type { NameRegistryApi } from './names.js'
import type {
  DataspaceRecord,
  ExplainResult,
  KindOptions,
  ListOptions,
  ListResult,
  Process,
  ProcessFunction,
  Selector,
  SpawnOptions,
  Watch,
  WatchOptions,
} from './types.js'

/**
 * The dataspace API, implemented by the in-process engine (`createDataspace`) and, later,
 * by the network client — code moves between the two unchanged.
 */
export interface DataspaceApi {
  readonly node: string
  /** The revision of the latest commit (0 before the first). */
  readonly revision: number
  defineKind<T = unknown>(kind: string, options?: KindOptions<T>): Promise<void>
  process(name: string): Process
  spawn(name: string, fn: ProcessFunction, options?: SpawnOptions): Process
  get<T = unknown>(
    kind: string,
    id: string | number,
    options?: { signal?: AbortSignal },
  ): Promise<DataspaceRecord<T> | undefined>
  list<T = unknown>(kind: string, options?: ListOptions): Promise<ListResult<T>>
  watch<T = unknown>(kind: string, options?: WatchOptions): Watch<T>
  explain(kind: string, options?: Selector): Promise<ExplainResult>
  /** Process groups of a scope (default `default`), with Erlang/OTP `pg` semantics. */
  groups(scope?: string): ProcessGroupsApi
  /** The name registry, with fence tokens. */
  readonly names: NameRegistryApi
  /** A KV bucket with CAS, TTL and watch. */
  kv(bucket: string): KvApi
  close(): Promise<void>
}
