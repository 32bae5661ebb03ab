import type { DataspaceRecord, Json, Labels } from '../model/index.js'
import type { KvEntry } from '../model/index.js'

/** The identity of one of the client's processes that survives a change of pid. */
export interface OwnerRef {
  /** A number unique within the client: unchanged when a session loss changes the pid. */
  readonly ref: number
  readonly id: string
  readonly alive: boolean
}

export interface OwnedRecord {
  readonly owner: OwnerRef
  readonly kind: string
  readonly id: string
  readonly data: unknown
  readonly labels: Labels
  readonly expiresAt: number | undefined
}

export interface Membership {
  readonly scope: string
  readonly group: string
  readonly member: OwnerRef
  count: number
  meta: Json | undefined
}

export interface OwnedName {
  readonly owner: OwnerRef
  readonly name: string
  readonly meta: Json | undefined
}

export interface OwnedKey {
  readonly owner: OwnerRef
  readonly bucket: string
  readonly key: string
  readonly value: Json
  readonly expiresAt: number | undefined
}

const k = (...parts: readonly unknown[]): string => JSON.stringify(parts)

/**
 * What the client's processes own, as far as the client has seen: every record, membership,
 * name and KV key its own calls created and have not removed. When the session is lost the
 * server retracts all of it; the client replays this to restore it under the new session.
 * It is what the client knows, not the server's truth: a record another process took over
 * (`claim` with `owner: 'self'`) is still listed here and its restore reports a `conflict`.
 */
export class OwnedState {
  readonly records = new Map<string, OwnedRecord>()
  readonly memberships = new Map<string, Membership>()
  readonly names = new Map<string, OwnedName>()
  readonly keys = new Map<string, OwnedKey>()

  /** Notes a record a call wrote: kept when one of ours owns it, forgotten otherwise. */
  noteRecord(record: DataspaceRecord, owners: (pid: string) => OwnerRef | undefined): void {
    const key = k(record.kind, record.id)
    const owner = record.owner === null ? undefined : owners(record.owner)
    if (owner === undefined) {
      this.records.delete(key)
      return
    }
    this.records.set(key, {
      owner,
      kind: record.kind,
      id: record.id,
      data: record.data,
      labels: record.labels,
      expiresAt: record.expiresAt,
    })
  }

  forgetRecord(kind: string, id: string | number): void {
    this.records.delete(k(kind, String(id)))
  }

  join(scope: string, group: string, member: OwnerRef, meta: Json | undefined): void {
    const key = k(scope, group, member.ref)
    const current = this.memberships.get(key)
    if (current === undefined) this.memberships.set(key, { scope, group, member, count: 1, meta })
    else {
      current.count++
      if (meta !== undefined) current.meta = meta
    }
  }

  leave(scope: string, group: string, member: OwnerRef): void {
    const key = k(scope, group, member.ref)
    const current = this.memberships.get(key)
    if (current === undefined) return
    // Erlang pg: leave removes one membership per listed pid.
    if (--current.count <= 0) this.memberships.delete(key)
  }

  updateMeta(scope: string, group: string, member: OwnerRef, meta: Json): void {
    const current = this.memberships.get(k(scope, group, member.ref))
    if (current !== undefined) current.meta = meta
  }

  register(owner: OwnerRef, name: string, meta: Json | undefined): void {
    this.names.set(name, { owner, name, meta })
  }

  unregister(name: string): void {
    this.names.delete(name)
  }

  noteKey(bucket: string, entry: KvEntry, owners: (pid: string) => OwnerRef | undefined): void {
    const key = k(bucket, entry.key)
    const owner = entry.owner === null ? undefined : owners(entry.owner)
    if (owner === undefined) {
      this.keys.delete(key)
      return
    }
    this.keys.set(key, {
      owner,
      bucket,
      key: entry.key,
      value: entry.value,
      expiresAt: entry.expiresAt,
    })
  }

  forgetKey(bucket: string, key: string): void {
    this.keys.delete(k(bucket, key))
  }

  /** Drops everything `owner` held (it exited: the server released it all). */
  forgetOwner(owner: OwnerRef): void {
    for (const map of [this.records, this.memberships, this.names, this.keys] as const) {
      for (const [key, item] of map as Map<string, { owner?: OwnerRef; member?: OwnerRef }>) {
        if ((item.owner ?? item.member) === owner) map.delete(key)
      }
    }
  }

  get size(): number {
    return this.records.size + this.memberships.size + this.names.size + this.keys.size
  }
}
