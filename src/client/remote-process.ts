import type { StandardSchemaV1 } from '@standard-schema/spec'
import type {
  AssertOptions,
  ClaimOptions,
  DataspaceRecord,
  ExitReason,
  Message,
  Op,
  Process,
  RetractOptions,
  SendTarget,
  Stream,
  TransactRequest,
  TransactResult,
} from '../model/index.js'
import { validate } from '../model/schema.js'
import { freezeJson } from '../model/validate.js'
import { InvalidArgument, ProcessExited } from '../errors/index.js'
import { exitReasonToWire } from '../protocol/index.js'
import type { OperationName } from '../protocol/index.js'
import { validateLabels } from '../query/index.js'
import type { OwnedState, OwnerRef } from './owned-state.js'
import { RemoteStream } from './remote-stream.js'
import type { Connection } from './connection.js'
import { mailboxSpec } from './stream-specs.js'

/** What a remote process needs from its client. */
export interface ProcessHost {
  readonly connection: Connection
  readonly owned: OwnedState
  ownerOf(pid: string): OwnerRef | undefined
  schemaOf(kind: string): StandardSchemaV1 | undefined
  noteRevision(revision: number): void
  forget(proc: RemoteProcess): void
}

type Args = Record<string, unknown>

/** Options without `signal` (which stays on the client) and without `undefined` values. */
export function wireOptions(options: object | undefined): Args {
  const out: Args = {}
  for (const [key, value] of Object.entries(options ?? {})) {
    if (key !== 'signal' && value !== undefined) out[key] = value
  }
  return out
}

let nextRef = 1

/**
 * A process of a network client: a session's process or one of its children. Its pid is known
 * at once (the client picks child pids, `<session pid>.<n>`) and changes only if the session is
 * lost and restored, which `client.status()` reports. Every write notes what the process owns,
 * so that a restore can put it back.
 */
export class RemoteProcess implements Process, OwnerRef {
  readonly ref = nextRef++
  readonly name: string
  readonly exited: Promise<ExitReason>
  readonly signal: AbortSignal
  readonly #host: ProcessHost
  readonly #abort = new AbortController()
  #id: string
  #alive = true
  /** True once the server has opened this process (the session's own is open from the start). */
  opened = false
  #resolveExited!: (reason: ExitReason) => void
  #messages: Stream<Message> | undefined
  #exiting: Promise<void> | undefined

  constructor(host: ProcessHost, id: string, name: string) {
    this.#host = host
    this.#id = id
    this.name = name
    this.signal = this.#abort.signal
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve
    })
  }

  get id(): string {
    return this.#id
  }

  /** False from the moment `exit` is called, as in the engine. */
  get alive(): boolean {
    return this.#alive && this.#exiting === undefined
  }

  /** After a session loss: the pid under the new session. */
  repid(id: string): void {
    this.#id = id
  }

  get messages(): Stream<Message> {
    this.#messages ??= new RemoteStream(
      this.#host.connection,
      mailboxSpec(() => this.#id),
    )
    return this.#messages
  }

  async assert<T = unknown>(
    kind: string,
    id: string | number,
    data: T,
    options: AssertOptions = {},
  ): Promise<DataspaceRecord<T>> {
    checkLabels(options.labels)
    const value = await this.#validated(kind, data)
    const record = (await this.#call(
      'assert',
      { kind, id, data: value, options: wireOptions(options) },
      options.signal,
    )) as DataspaceRecord<T>
    this.#noteRecord(record)
    return record
  }

  async retract(
    kind: string,
    id: string | number,
    options: RetractOptions = {},
  ): Promise<DataspaceRecord> {
    const record = (await this.#call(
      'retract',
      { kind, id, options: wireOptions(options) },
      options.signal,
    )) as DataspaceRecord
    this.#host.owned.forgetRecord(kind, id)
    this.#host.noteRevision(record.revision)
    return record
  }

  async transact(request: TransactRequest): Promise<TransactResult> {
    // A malformed request goes to the server as it is, which refuses it as the engine does.
    const ops: readonly (Op | null | undefined)[] = Array.isArray(request.then) ? request.then : []
    const then = Array.isArray(request.then)
      ? await Promise.all(
          ops.map(async (op) => {
            if (op?.op === 'claim') checkPatch(op.patch)
            if (op?.op !== 'assert') return op
            checkLabels(op.labels)
            return { ...op, data: await this.#validated(op.kind, op.data) }
          }),
        )
      : request.then
    const wire = wireOptions({ if: request.if, then })
    const result = (await this.#call(
      'transact',
      { request: wire },
      request.signal,
    )) as TransactResult
    this.#host.noteRevision(result.revision)
    result.results.forEach((record, i) => {
      const op = ops[i]
      if (op?.op === 'retract') this.#host.owned.forgetRecord(op.kind, op.id)
      else if (record !== undefined && record !== null) this.#noteRecord(record)
    })
    // The wire says null where the engine says undefined (a claim that matched nothing).
    return { revision: result.revision, results: result.results.map((r) => r ?? undefined) }
  }

  async claim<T = unknown>(
    kind: string,
    options: ClaimOptions,
  ): Promise<DataspaceRecord<T> | undefined> {
    checkPatch(options.patch)
    const record = (await this.#call(
      'claim',
      { kind, options: wireOptions(options) },
      options.signal,
    )) as DataspaceRecord<T> | null
    if (record === null) return undefined
    this.#noteRecord(record)
    return record
  }

  async send(target: SendTarget, message: unknown): Promise<number> {
    checkMessage(message)
    return (await this.#call('send', { target, message })) as number
  }

  async monitor(pid: string): Promise<ExitReason> {
    return (await this.#call('monitor', { target: pid })) as ExitReason
  }

  exit(reason: ExitReason = 'normal'): Promise<void> {
    if (this.#exiting !== undefined) return this.#exiting
    this.#exiting = (async () => {
      try {
        await this.#call('process.exit', { reason: exitReasonToWire(reason) })
      } catch (error) {
        // Already gone on the server (or the client closed): the exit stands either way.
        if (!(error instanceof ProcessExited)) throw error
      } finally {
        this.markExited(reason)
      }
    })()
    return this.#exiting
  }

  /** The process is gone: resolves `exited`, aborts `signal`, forgets what it owned. */
  markExited(reason: ExitReason): void {
    if (!this.#alive) return
    this.#alive = false
    this.#host.owned.forgetOwner(this)
    this.#host.forget(this)
    this.#abort.abort(reason)
    this.#resolveExited(reason)
  }

  #call(op: OperationName, args: Args, signal?: AbortSignal): Promise<unknown> {
    if (!this.alive && op !== 'process.exit') {
      return Promise.reject(new ProcessExited(`process ${this.#id} has exited`, this.#id))
    }
    // The pid is read when the call goes out: a call queued across a session loss uses the new one.
    return this.#host.connection.call(op, () => ({ pid: this.#id, ...args }), { signal })
  }

  async #validated(kind: string, data: unknown): Promise<unknown> {
    // Checked and frozen as the engine does (JSON.stringify would silently turn a Date into a string).
    const schema = this.#host.schemaOf(kind)
    return freezeJson(schema === undefined ? data : await validate(kind, schema, data))
  }

  #noteRecord(record: DataspaceRecord): void {
    this.#host.noteRevision(record.revision)
    this.#host.owned.noteRecord(record, (pid) => this.#host.ownerOf(pid))
  }
}

function checkLabels(labels: unknown): void {
  if (labels === undefined) return
  const problem = validateLabels(labels)
  if (problem !== undefined) throw new InvalidArgument(`labels: ${problem}`)
}

/** A claim patch's values become data, which the engine checks and freezes after the merge. */
function checkPatch(patch: unknown): void {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return // the server refuses it
  for (const [key, value] of Object.entries(patch)) {
    if (value !== undefined) freezeJson(value, `data.${key}`)
  }
}

/**
 * Messages are not stored and the engine passes them by reference, but only JSON crosses the
 * wire: anything else is refused rather than silently converted. A copy is checked, so the
 * caller's message is not frozen.
 */
export function checkMessage(message: unknown): void {
  if (message === undefined) return
  let copy: unknown
  try {
    copy = structuredClone(message)
  } catch {
    throw new InvalidArgument('message must be JSON (null, boolean, number, string, array, object)')
  }
  freezeJson(copy, 'message')
}
