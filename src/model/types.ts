import type { StandardSchemaV1 } from '@standard-schema/spec'

/** A JSON-compatible value: what record data, KV values and messages are made of. */
export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }

/** Something that identifies a process: its pid, or the process itself. */
export type PidLike = string | { readonly id: string }

/** Labels are a flat map of Kubernetes-syntax keys to values. */
export type Labels = Readonly<Record<string, string>>

/**
 * An assertion: one record of a kind, keyed by `(kind, id)`, owned by a process (or by nobody).
 * Records handed out by the dataspace are frozen: they are shared by every reader.
 */
export interface DataspaceRecord<T = unknown> {
  readonly kind: string
  readonly id: string
  readonly data: T
  readonly labels: Labels
  /** The owning pid, or `null` for a durable record that outlives every process. */
  readonly owner: string | null
  /** The revision of the commit that last wrote this record. */
  readonly revision: number
  /** The revision of the commit that created this record. */
  readonly createdRevision: number
  /** Epoch milliseconds at which the record is retracted with reason `expired`. */
  readonly expiresAt?: number
}

/** Why a process exited: a well-known string (`normal`, `killed`, …), any string, or an error. */
export type ExitReason = string | { readonly error: unknown }

/** Why a record left the store (or, for `unmatched`, left a watcher's selector). */
export type RetractReason =
  | 'retract'
  | 'owner-exit'
  | 'expired'
  | 'deleted'
  | 'unmatched'
  /** The backend refused the commit that wrote it: it was never stored (docs/backends.md). */
  | 'refused'

/** A kind's declaration. */
export interface KindOptions<T = unknown> {
  /** Any Standard Schema validator (zod, valibot, arktype, …); its output is what is stored. */
  readonly schema?: StandardSchemaV1<unknown, T>
  /** A closed list of selectable data paths: a selector naming any other is `InvalidSelector`. */
  readonly fields?: readonly string[]
  /** Data paths to index for field selectors (equality and `!=`); array fields index each element. */
  readonly indexes?: readonly string[]
  /**
   * `false`: the kind's records live only in the durable backend, not in memory (docs/backends.md, "Non-resident kinds"):
   * for tables too large to hold. `get`, `list`, `explain` and `claim` go to the backend's
   * indexes; watches still work. Set it before the kind's first record; it never changes. Its
   * records cannot have a `ttl`. Ignored (every kind is resident) without a backend that answers
   * queries (memory). See docs/backends.md, "Non-resident kinds".
   */
  readonly resident?: boolean
}

/** Options shared by `list`, `watch`, `explain` and `claim`: which records. */
export interface Selector {
  /** An exact id or a glob (`*` any run, `?` one char, `\` escapes). */
  readonly id?: string | number
  /** Kubernetes field-selector grammar over data paths, or an exact-match map. */
  readonly fields?: string | Readonly<Record<string, string>>
  /** Kubernetes label-selector grammar, or an exact-match map. */
  readonly labels?: string | Readonly<Record<string, string>>
  /** Only records owned by this pid. */
  readonly owner?: string
}

export interface ListOptions extends Selector {
  /** At most this many items; `continue` in the result fetches the next page. */
  readonly limit?: number
  /** The opaque token from a previous page: the next page, consistent at the first page's revision. */
  readonly continue?: string
  readonly signal?: AbortSignal
}

export interface ListResult<T = unknown> {
  readonly items: readonly DataspaceRecord<T>[]
  /** The revision the items are consistent at. */
  readonly revision: number
  /** Present when there are more items. */
  readonly continue?: string
}

export interface WatchOptions extends Selector {
  /** Resume: deliver every change after this revision (the last one you saw). */
  readonly fromRevision?: number
  /** Begin with a `snapshot` event (default `true`, or `false` when `fromRevision` is given). */
  readonly snapshot?: boolean
  /** Queue bound in events; a watcher that falls further behind gets `reset` + `snapshot`. */
  readonly bufferSize?: number
  readonly signal?: AbortSignal
}

export interface ExplainResult {
  /** The index the query is served from (`id`, `id-prefix`, `owner`, `field:<path>`, `label:<key>`), or `null`. */
  readonly index: string | null
  readonly scanned: 'index' | 'full'
  /**
   * How many records the chosen access path visits before the full selector is applied; for a
   * non-resident kind, the backend planner's estimate (0 when it gives none).
   */
  readonly candidates: number
  /** For a non-resident kind: the backend that answers, and its own plan (EXPLAIN output). */
  readonly backend?: { readonly name: string; readonly detail: string }
  /**
   * `true` when no kind of this name was ever defined or written: every query of it is empty
   * because the name is unknown (a typo?), not because nothing matches. Absent otherwise.
   */
  readonly unknownKind?: true
}

/**
 * Why a watch starts over: `overflow` (the watcher fell behind its queue), `history-gone` (a
 * resume point is no longer in history) or `slow-consumer` (a network stream was closed because
 * its client could not keep up; reconnect and resume).
 */
export type WatchResetReason = 'overflow' | 'history-gone' | 'slow-consumer'

/** Events of a watch, keyed on `type`. */
export type WatchEvent<T = unknown> =
  | {
      readonly type: 'snapshot'
      readonly records: readonly DataspaceRecord<T>[]
      readonly revision: number
      readonly dropped?: number
    }
  | {
      readonly type: 'asserted'
      readonly record: DataspaceRecord<T>
      readonly previous?: DataspaceRecord<T>
      readonly revision: number
      readonly dropped?: number
    }
  | {
      readonly type: 'retracted'
      readonly record: DataspaceRecord<T>
      readonly reason: RetractReason
      readonly revision: number
      readonly dropped?: number
    }
  | {
      readonly type: 'message'
      readonly from: string
      readonly kind: string
      readonly id: string
      readonly message: unknown
      readonly dropped?: number
    }
  | {
      readonly type: 'reset'
      readonly reason: WatchResetReason
      readonly dropped?: number
    }

/** Why a stream ended. */
export type CloseReason =
  'closed' | 'aborted' | 'owner-exit' | 'dataspace-closed' | { readonly error: unknown }

/**
 * A live stream: an AsyncIterable that ends when closed. One consumer at a time.
 * `closed` resolves with the reason the stream ended.
 */
export interface Stream<T> extends AsyncIterable<T> {
  readonly closed: Promise<CloseReason>
  /** Stops the stream; no event is delivered after it returns. */
  close(): void
  /** The next item (what `for await` calls); one pending call at a time. */
  next(): Promise<IteratorResult<T, undefined>>
  return(): Promise<IteratorResult<T, undefined>>
  [Symbol.asyncDispose](): Promise<void>
}

export type Watch<T = unknown> = Stream<WatchEvent<T>>

/** A value sent to a process's mailbox. */
export interface Message {
  readonly from: string
  readonly message: unknown
  /** Messages dropped for this mailbox (it was full) since the previous delivered one. */
  readonly dropped?: number
}

/** Where `send` delivers: a pid, the watchers of one record, a group or a registered name. */
export type SendTarget =
  | string
  | { readonly kind: string; readonly id: string | number }
  | { readonly group: string; readonly scope?: string }
  | { readonly name: string; readonly fence?: number }

export interface AssertOptions {
  readonly labels?: Labels
  /** Milliseconds until the record is retracted with reason `expired`. */
  readonly ttl?: number
  /** CAS: the record's current revision must be this (`0` = must not exist). */
  readonly ifRevision?: number
  /**
   * `null` writes the record without an owner: it outlives every process and any process may
   * write or retract it (guard with `ifRevision`). Writing your own record with `owner: null`
   * releases it.
   */
  readonly owner?: null
  readonly signal?: AbortSignal
}

export interface RetractOptions {
  readonly ifRevision?: number
  readonly signal?: AbortSignal
}

/** Claim order: `id`, `revision`, `createdRevision` or a data path; prefix `-` for descending. */
export type OrderBy = string

/**
 * Which record to claim and how to patch it. There is no `owner` selector here: `owner` says who
 * owns the record after the claim.
 */
export interface ClaimOptions extends Omit<Selector, 'owner'> {
  /**
   * Shallow-merged into the claimed record's data. A key `owner: 'self'` in it is not data: it
   * makes the claimer the owner, exactly like the `owner` option.
   */
  readonly patch: Readonly<Record<string, unknown>>
  /** `'self'` makes the claiming process the record's owner; by default ownership is unchanged. */
  readonly owner?: 'self'
  /** Which match wins when several do (default `id`). */
  readonly orderBy?: OrderBy
  readonly signal?: AbortSignal
}

/** A transaction condition (etcd `Txn` compare): every check given must hold. */
export interface Condition {
  readonly kind: string
  readonly id: string | number
  /** The record's revision must be this (`0` = must not exist). */
  readonly revision?: number
  /** The record must (or must not) exist. */
  readonly exists?: boolean
  /** With `equals` / `notEquals`: the data path to compare. */
  readonly field?: string
  readonly equals?: unknown
  readonly notEquals?: unknown
}

/** One operation of a transaction. */
export type Op =
  | ({
      readonly op: 'assert'
      readonly kind: string
      readonly id: string | number
      readonly data: unknown
    } & Omit<AssertOptions, 'signal'>)
  | ({ readonly op: 'retract'; readonly kind: string; readonly id: string | number } & Omit<
      RetractOptions,
      'signal'
    >)
  | ({
      readonly op: 'claim'
      readonly kind: string
      /** When nothing matches, the transaction fails with `Conflict` unless this is `true`. */
      readonly optional?: boolean
    } & Omit<ClaimOptions, 'signal'>)

export interface TransactRequest {
  readonly if?: readonly Condition[]
  readonly then: readonly Op[]
  readonly signal?: AbortSignal
}

/** One result per op: the written record, the retracted record, or the claimed record (if any). */
export type OpResult = DataspaceRecord | undefined

export interface TransactResult {
  readonly revision: number
  readonly results: readonly OpResult[]
}

/** An owner identity with a lifecycle `alive → exited(reason)`. */
export interface Process {
  /** `<node>/<name>#<n>` */
  readonly id: string
  readonly name: string
  readonly alive: boolean
  /** Resolves with the exit reason once every record the process owned has been retracted. */
  readonly exited: Promise<ExitReason>
  /** Exits the process (idempotent): retracts all it owns in one commit. */
  exit(reason?: ExitReason): Promise<void>
  assert<T = unknown>(
    kind: string,
    id: string | number,
    data: T,
    options?: AssertOptions,
  ): Promise<DataspaceRecord<T>>
  retract(kind: string, id: string | number, options?: RetractOptions): Promise<DataspaceRecord>
  transact(request: TransactRequest): Promise<TransactResult>
  claim<T = unknown>(kind: string, options: ClaimOptions): Promise<DataspaceRecord<T> | undefined>
  /** Sends a transient message; resolves with how many recipients it was delivered to. */
  send(target: SendTarget, message: unknown): Promise<number>
  /** The mailbox: every message sent to this pid, until the process exits. */
  readonly messages: Stream<Message>
  /** Settles with `pid`'s exit reason when it exits (`noproc` if it is unknown or already gone). */
  monitor(pid: string): Promise<ExitReason>
}

/** The process function of `spawn`: the process lives exactly as long as the returned promise. */
export type ProcessFunction = (proc: Process, signal: AbortSignal) => unknown

export interface SpawnOptions {
  /** Aborting it exits the process with reason `aborted`. */
  readonly signal?: AbortSignal
}
