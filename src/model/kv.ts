import type { Json, PidLike, RetractReason, Stream } from './types.js'
import { InvalidArgument } from '../errors/index.js'

/** Values larger than this (as JSON, in bytes) are refused unless the bucket says otherwise. */
export const DEFAULT_MAX_VALUE_SIZE = 1024 * 1024
const BUCKET = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** `InvalidArgument` unless `bucket` is a valid bucket name (dot-separated `[A-Za-z0-9_-]+`). */
export function checkBucket(bucket: unknown): string {
  if (typeof bucket !== 'string' || !BUCKET.test(bucket) || bucket.length > 200) {
    throw new InvalidArgument(
      `invalid bucket name ${JSON.stringify(bucket)}: use letters, digits, "_", "-" and dots`,
    )
  }
  return bucket
}

/** A key's current value. */
export interface KvEntry {
  readonly key: string
  readonly value: Json
  /** The revision of the commit that last wrote the key (the CAS token for `ifRevision`). */
  readonly revision: number
  /** The process the key is bound to, or `null` for a durable key. */
  readonly owner: string | null
  readonly expiresAt?: number
}

export interface KvPutOptions {
  /** Milliseconds until the key is removed (a watcher sees reason `expired`). */
  readonly ttl?: number
  /** CAS: the key's current revision must be this; `0` = create only. */
  readonly ifRevision?: number
  /** Binds the key to a live process: it is removed when that process exits. */
  readonly owner?: PidLike
}

export interface KvScanOptions {
  /** Keys starting with this literal text. */
  readonly prefix?: string
  /** Keys matching this glob (`*`, `?`, `\` escapes). */
  readonly glob?: string
  readonly limit?: number
  readonly continue?: string
  readonly signal?: AbortSignal
}

export interface KvScanResult {
  readonly entries: readonly KvEntry[]
  readonly revision: number
  readonly continue?: string
}

export interface KvWatchOptions {
  readonly prefix?: string
  readonly glob?: string
  /** Replay every change after this revision instead of starting from the current values. */
  readonly fromRevision?: number
  readonly signal?: AbortSignal
}

/**
 * KV watch events. `isUpdate` is false for what existed or happened before the watch opened
 * (the replay) and true for live changes, as nats.js marks them.
 */
export type KvEvent =
  | ({ readonly type: 'put'; readonly isUpdate: boolean } & KvEntry)
  | {
      readonly type: 'delete'
      readonly key: string
      readonly revision: number
      readonly reason: RetractReason
      readonly isUpdate: boolean
    }
  | { readonly type: 'reset' }

export type KvWatch = Stream<KvEvent>

/** The KV API of one bucket (`ds.kv(bucket)`). */
export interface KvApi {
  readonly bucket: string
  get(key: string): Promise<KvEntry | undefined>
  put(key: string, value: Json, options?: KvPutOptions): Promise<KvEntry>
  /** Resolves `false` when the key did not exist; an `ifRevision` mismatch is `Conflict`. */
  delete(key: string, options?: { ifRevision?: number }): Promise<boolean>
  scan(options?: KvScanOptions): Promise<KvScanResult>
  watch(options?: KvWatchOptions): KvWatch
}
