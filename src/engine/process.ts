import { ProcessExited } from '../errors/index.js'
import type { ByteMeter } from './memory-account.js'
import { QueuedStream } from '../streams/queued-stream.js'
import { messageBytes } from './record-bytes.js'
import type {
  AssertOptions,
  ClaimOptions,
  DataspaceRecord,
  ExitReason,
  Message,
  Process,
  RetractOptions,
  SendTarget,
  TransactRequest,
  TransactResult,
} from '../model/types.js'

/** The bounds every mailbox gets: `size` messages and `bytes` estimated bytes. */
export interface MailboxBounds {
  readonly size: number
  readonly bytes: number
  /** Totals the bytes queued over every mailbox (the memory account's). */
  readonly meter: ByteMeter
}

/** What a process asks of its dataspace; the engine implements it. */
export interface ProcessHost {
  assert(
    proc: LocalProcess,
    kind: string,
    id: string | number,
    data: unknown,
    options: AssertOptions,
  ): Promise<DataspaceRecord>
  retract(
    proc: LocalProcess,
    kind: string,
    id: string | number,
    options: RetractOptions,
  ): Promise<DataspaceRecord>
  transact(proc: LocalProcess, request: TransactRequest): Promise<TransactResult>
  claim(
    proc: LocalProcess,
    kind: string,
    options: ClaimOptions,
  ): Promise<DataspaceRecord | undefined>
  send(proc: LocalProcess, target: SendTarget, message: unknown): Promise<number>
  monitor(proc: LocalProcess, pid: string): Promise<ExitReason>
  exit(proc: LocalProcess, reason: ExitReason): Promise<void>
}

/**
 * A process of an in-process dataspace. It holds its identity, mailbox and exit state; every
 * operation goes through the engine, which checks liveness inside the commit.
 */
export class LocalProcess implements Process {
  readonly id: string
  readonly name: string
  readonly exited: Promise<ExitReason>
  readonly messages: QueuedStream<Message>
  /** Aborted when the process exits: spawned functions watch it to stop. */
  readonly signal: AbortSignal
  readonly #host: ProcessHost
  readonly #mailboxSize: number
  readonly #mailboxBytes: number
  readonly #abort = new AbortController()
  #alive = true
  #exiting: Promise<void> | undefined
  #resolveExited!: (reason: ExitReason) => void
  #droppedMessages = 0
  /** Resolvers of `monitor(this.id)` calls by other processes. */
  readonly monitors = new Set<(reason: ExitReason) => void>()
  /** What `mailbox` overflow has cost, for the engine's counters. */
  droppedTotal = 0

  constructor(host: ProcessHost, id: string, name: string, mailbox: MailboxBounds) {
    this.#host = host
    this.id = id
    this.name = name
    this.#mailboxSize = mailbox.size
    this.#mailboxBytes = mailbox.bytes
    this.signal = this.#abort.signal
    this.messages = new QueuedStream<Message>(undefined, {
      measure: messageBytes,
      meter: mailbox.meter,
    })
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve
    })
  }

  get alive(): boolean {
    return this.#alive
  }

  /** Throws `ProcessExited` unless the process is alive. */
  checkAlive(): void {
    if (!this.#alive) throw new ProcessExited(`process ${this.id} has exited`, this.id)
  }

  assert<T = unknown>(
    kind: string,
    id: string | number,
    data: T,
    options: AssertOptions = {},
  ): Promise<DataspaceRecord<T>> {
    return this.#host.assert(this, kind, id, data, options) as Promise<DataspaceRecord<T>>
  }

  retract(
    kind: string,
    id: string | number,
    options: RetractOptions = {},
  ): Promise<DataspaceRecord> {
    return this.#host.retract(this, kind, id, options)
  }

  transact(request: TransactRequest): Promise<TransactResult> {
    return this.#host.transact(this, request)
  }

  claim<T = unknown>(kind: string, options: ClaimOptions): Promise<DataspaceRecord<T> | undefined> {
    return this.#host.claim(this, kind, options) as Promise<DataspaceRecord<T> | undefined>
  }

  send(target: SendTarget, message: unknown): Promise<number> {
    return this.#host.send(this, target, message)
  }

  monitor(pid: string): Promise<ExitReason> {
    return this.#host.monitor(this, pid)
  }

  exit(reason: ExitReason = 'normal'): Promise<void> {
    if (this.#exiting !== undefined) return this.#exiting
    this.#alive = false
    this.#exiting = this.#host.exit(this, reason)
    return this.#exiting
  }

  /**
   * Ends the process here with no commit of its own, because the store ended it: a cluster
   * node's session that a reaper took, or whose lease ran out (docs/cluster.md, "Sessions in
   * the store"). The engine calls it after forgetting the process; a later `exit` is a no-op.
   */
  abandon(reason: ExitReason): void {
    if (!this.#alive) return
    this.#alive = false
    this.#exiting = Promise.resolve()
    this.finishExit(reason)
  }

  /**
   * Puts a message in the mailbox; a full mailbox (in messages or in bytes) drops it and counts
   * the drop. An empty mailbox takes any one message, so a large one is never undeliverable.
   */
  deliver(from: string, message: unknown): boolean {
    if (!this.#alive) return false
    const dropped = this.#droppedMessages
    const item: Message = dropped > 0 ? { from, message, dropped } : { from, message }
    const queued = this.messages.length
    if (
      queued >= this.#mailboxSize ||
      (queued > 0 && this.messages.bytes + this.messages.weigh(item) > this.#mailboxBytes)
    ) {
      this.#droppedMessages++
      this.droppedTotal++
      return false
    }
    this.#droppedMessages = 0
    return this.messages.push(item)
  }

  /** Called by the engine once the exit commit is applied. */
  finishExit(reason: ExitReason): void {
    this.messages.end('owner-exit')
    this.#abort.abort(reason)
    for (const resolve of this.monitors) resolve(reason)
    this.monitors.clear()
    this.#resolveExited(reason)
  }
}
