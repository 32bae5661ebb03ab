import type { Kernel } from '../engine/index.js'
import { MappedStream } from '../streams/mapped-stream.js'
import type { DataspaceRecord, Json, WatchEvent } from '../model/types.js'
import { checkId, checkTtl, describe, freezeJson, jsonBytes, toPid } from '../model/validate.js'
import { InvalidArgument, NotFound, TooLarge } from '../errors/index.js'
import { escapeGlob } from '../query/index.js'
import { checkBucket, DEFAULT_MAX_VALUE_SIZE } from '../model/kv.js'
import type {
  KvApi,
  KvEntry,
  KvEvent,
  KvPutOptions,
  KvScanOptions,
  KvScanResult,
  KvWatch,
  KvWatchOptions,
} from '../model/kv.js'

/**
 * A KV bucket over records of kind `$kv.<bucket>`: a key is a record id, its value the record's
 * data and its revision the record's. Keys without an owner are durable; a key put with
 * `owner` is owned by that process and goes when it goes (etcd's lease keys). As in etcd, any
 * writer may overwrite any key: guard concurrent writers with `ifRevision`.
 */
export class KvBucket implements KvApi {
  readonly bucket: string
  readonly #kind: string
  readonly #ds: Kernel
  readonly #maxValueSize: number

  constructor(ds: Kernel, bucket: string, options: { maxValueSize?: number } = {}) {
    checkBucket(bucket)
    this.#ds = ds
    this.bucket = bucket
    this.#kind = `$kv.${bucket}`
    this.#maxValueSize = options.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const record = await this.#ds.get(this.#kind, checkId(key))
    return record === undefined ? undefined : entry(record)
  }

  async put(key: string, value: Json, options: KvPutOptions = {}): Promise<KvEntry> {
    const id = checkId(key)
    freezeJson(value, 'value', this.#ds.maxValueBytes)
    this.#checkSize(id, value)
    const owner = options.owner === undefined ? null : toPid(options.owner)
    if (owner !== null) this.#ds.checkProcess(owner)
    const ttl = options.ttl === undefined ? undefined : checkTtl('ttl', options.ttl)
    const { result } = await this.#ds.commit(null, (tx) =>
      tx.assert({ kind: this.#kind, id, data: value, owner, ttl, ifRevision: options.ifRevision }),
    )
    return entry(result)
  }

  async delete(key: string, options: { ifRevision?: number } = {}): Promise<boolean> {
    const id = checkId(key)
    try {
      await this.#ds.commit(null, (tx) => tx.retract(this.#kind, id, options.ifRevision, 'deleted'))
      return true
    } catch (error) {
      if (error instanceof NotFound) return false
      throw error
    }
  }

  async scan(options: KvScanOptions = {}): Promise<KvScanResult> {
    const { limit, signal } = options
    const page = await this.#ds.list(this.#kind, {
      ...idSelector(options),
      ...(limit === undefined ? {} : { limit }),
      ...(options.continue === undefined ? {} : { continue: options.continue }),
      ...(signal === undefined ? {} : { signal }),
    })
    return {
      entries: page.items.map(entry),
      revision: page.revision,
      ...(page.continue === undefined ? {} : { continue: page.continue }),
    }
  }

  watch(options: KvWatchOptions = {}): KvWatch {
    const live = this.#ds.revision
    const source = this.#ds.watch(this.#kind, {
      ...idSelector(options),
      ...(options.fromRevision === undefined ? {} : { fromRevision: options.fromRevision }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
    // What happened up to the watch's opening is replay (isUpdate false); anything later is live.
    return new MappedStream(source, (event) => toKvEvents(event, live))
  }

  #checkSize(key: string, value: Json): void {
    const size = jsonBytes(value)
    if (size > this.#maxValueSize) {
      throw new TooLarge(
        `value of ${this.bucket}/${key} is ${size} bytes; the limit is ${this.#maxValueSize}`,
      )
    }
  }
}

function toKvEvents(event: WatchEvent, live: number): KvEvent[] {
  switch (event.type) {
    case 'snapshot':
      return event.records.map((record) => ({ type: 'put', ...entry(record), isUpdate: false }))
    case 'asserted':
      return [{ type: 'put', ...entry(event.record), isUpdate: event.revision > live }]
    case 'retracted':
      return [
        {
          type: 'delete',
          key: event.record.id,
          revision: event.revision,
          reason: event.reason,
          isUpdate: event.revision > live,
        },
      ]
    case 'reset':
      return [{ type: 'reset' }]
    case 'message':
      return []
    default:
      return event satisfies never
  }
}

function idSelector(options: { prefix?: string; glob?: string }): { id?: string } {
  if (options.prefix !== undefined && options.glob !== undefined) {
    throw new InvalidArgument('give prefix or glob, not both')
  }
  if (options.glob !== undefined) return { id: options.glob }
  if (options.prefix !== undefined && typeof options.prefix !== 'string')
    throw new InvalidArgument(`prefix must be a string, got ${describe(options.prefix)}`)
  if (options.prefix !== undefined && options.prefix !== '')
    return { id: `${escapeGlob(options.prefix)}*` }
  return {}
}

function entry(record: DataspaceRecord): KvEntry {
  const base = {
    key: record.id,
    value: record.data as Json,
    revision: record.revision,
    owner: record.owner,
  }
  return record.expiresAt === undefined ? base : { ...base, expiresAt: record.expiresAt }
}
