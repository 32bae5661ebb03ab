import type { DurableGate } from '../../streams/index.js'
import type {
  CloseReason,
  DataspaceRecord,
  ListOptions,
  ListResult,
  SendTarget,
  Selector,
  Watch,
  WatchEvent,
  WatchOptions,
} from '../../model/index.js'
import type { Transaction } from '../transaction.js'
import type { Observation } from '../watch-registry.js'

/**
 * What a facade (groups, names, KV) may use of the kernel: reads, one commit entry point, and
 * delivery to local mailboxes. A facade is records of a reserved kind plus this; it never sees
 * the engine's stores, indexes or process table, so a new facade is a new folder and a
 * registration in the composition root (`src/dataspace.ts`), with no engine edit.
 */
export interface Kernel {
  /** This node's name: the prefix of every pid made here. */
  readonly node: string
  /** The revision of the latest commit. */
  readonly revision: number
  /** The largest value a client may write (the value rule, `model/json-value.ts`). */
  readonly maxValueBytes: number
  /** Holds stream items back until their revision is durable (undefined: memory backend). */
  readonly gate: DurableGate | undefined
  /** Throws `ProcessExited` unless `pid` is a live process of this node. */
  checkProcess(pid: string): void
  /** Whether `pid` is a live process of this node. */
  isAlive(pid: string): boolean
  /** Puts `message` from `from` into the mailbox of local process `pid`; false if not delivered. */
  deliver(pid: string, from: string, message: unknown): boolean
  /** The resident record `kind/id`, synchronously (undefined when absent). */
  peek(kind: string, id: string): DataspaceRecord | undefined
  /** The resident records matching a selector, in id order, synchronously. */
  query(kind: string, selector?: Selector): DataspaceRecord[]
  get<T = unknown>(kind: string, id: string): Promise<DataspaceRecord<T> | undefined>
  list<T = unknown>(kind: string, options?: ListOptions): Promise<ListResult<T>>
  watch<T = unknown>(kind: string, options?: WatchOptions): Watch<T>
  /** A synchronous observation of a kind: a snapshot now, then each commit's events. */
  observe<T = unknown>(
    kind: string,
    options: Selector,
    onCommit: (events: WatchEvent<T>[]) => void,
    onClose?: (reason: CloseReason) => void,
  ): Observation<T>
  /** `value`, once the latest revision is durable (at once with the memory backend). */
  released<T>(value: T): T | Promise<T>
  /**
   * THE commit (`engine/commit.ts`, its steps listed there): `build` stages changes on a
   * transaction (checked against current state); they are applied as one revision, watchers see
   * them in one round, and the promise settles when the revision is durable. `actor` is the
   * process acting (null for a facade on its own).
   */
  commit<R>(
    actor: string | null,
    build: (tx: Transaction) => R,
  ): Promise<{ revision: number; result: R }>
}

/**
 * Resolves a `send` target the engine does not know itself (`{ group }`, `{ name }`) to the pids
 * it stands for; registered by the composition root. Returns undefined when the target is not
 * its kind, so several resolvers can be asked in turn.
 */
export type TargetResolver = (target: SendTarget) => readonly string[] | undefined
