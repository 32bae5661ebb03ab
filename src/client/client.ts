import { runProcess } from '../model/run-process.js'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import type {
  DataspaceApi,
  DataspaceRecord,
  ExplainResult,
  KindOptions,
  ListOptions,
  ListResult,
  ProcessFunction,
  Selector,
  Stream,
  SpawnOptions,
  Watch,
  WatchEvent,
  WatchOptions,
} from '../model/index.js'
import { Closed, InvalidArgument } from '../errors/index.js'
import type { ProcessGroupsApi } from '../model/index.js'
import type { KvApi } from '../model/index.js'
import type { NameRegistryApi } from '../model/index.js'
import type { WelcomeMessage } from '../protocol/index.js'
import type { BackoffOptions } from './backoff.js'
import { Connection } from './connection.js'
import { OwnedState } from './owned-state.js'
import type { OwnerRef } from './owned-state.js'
import { RemoteGroups, RemoteKv, RemoteNames } from './remote-facades.js'
import { RemoteProcess, wireOptions } from './remote-process.js'
import type { ProcessHost } from './remote-process.js'
import { RemoteStream } from './remote-stream.js'
import { restore } from './restore.js'
import { StatusHub } from './status.js'
import type { ClientStatus } from './status.js'
import { watchSpec } from './stream-specs.js'

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Bearer token, when the server has auth on. */
  readonly token?: string
  /** The session process's name (default `client`). */
  readonly name?: string
  /** Session lease in ms (server default 10 s): how long a dropped client keeps what it owns. */
  readonly ttl?: number
  /** Reconnect delays (default 100 ms doubling to 5 s, full jitter). */
  readonly backoff?: BackoffOptions
  /** Gives up on the first connection after this long, in ms (default 10 s). */
  readonly connectTimeoutMs?: number
  readonly signal?: AbortSignal
}

/** A dataspace on a server: the same {@link DataspaceApi} as `createDataspace()`, plus its connection's status. */
export interface DataspaceClient extends DataspaceApi {
  /** The session's own process: what `client.process()` children die with. */
  readonly session: RemoteProcess
  /** Connection and session events, from now on, until the client is closed. */
  status(): Stream<ClientStatus>
}

/**
 * Connects to a Dataspace server and opens a session: a process with a lease that everything
 * this client asserts is owned by (or by its children, `client.process(name)`).
 *
 * `url` may be a list: the nodes of a cluster (docs/cluster.md, "Client failover"). The first
 * connection tries them in order; when a connection is lost, each reconnect attempt goes to the
 * next one, and the session is resumed there (same pids, nothing retracted) within its lease.
 *
 * @example
 * const ds = await connect('http://127.0.0.1:7411', { name: 'billing', ttl: 10_000 })
 * const proc = ds.process('worker')
 * await proc.assert('api.route', 'billing', { path: '/billing' })
 * for await (const event of ds.watch('api.route')) console.log(event)
 */
export async function connect(
  url: string | readonly string[],
  options: ConnectOptions = {},
): Promise<DataspaceClient> {
  const client = new RemoteDataspace(url, options)
  // close() already swallows its exit's failure (the lease ends the session instead); the
  // caller learns of the abort from connect's own rejection.
  const abort = (): void => {
    client.close().catch(() => {})
  }
  options.signal?.throwIfAborted()
  options.signal?.addEventListener('abort', abort, { once: true })
  try {
    await client.start()
  } finally {
    options.signal?.removeEventListener('abort', abort)
  }
  return client
}

class RemoteDataspace implements DataspaceClient, ProcessHost {
  readonly connection: Connection
  readonly owned = new OwnedState()
  readonly #status = new StatusHub()
  readonly #schemas = new Map<string, StandardSchemaV1>()
  /** Live processes of this client by current pid, the session's first. */
  readonly #processes = new Map<string, RemoteProcess>()
  #session: RemoteProcess | undefined
  #node = ''
  #revision = 0
  #childCounter = 0
  #names: RemoteNames | undefined
  #closing: Promise<void> | undefined

  constructor(url: string | readonly string[], options: ConnectOptions) {
    this.connection = new Connection(
      url,
      {
        token: options.token,
        name: options.name,
        ttl: options.ttl,
        backoff: options.backoff,
        connectTimeoutMs: options.connectTimeoutMs,
      },
      {
        onSession: (welcome, first) => this.#onSession(welcome, first),
        onDisconnected: (error) => this.#status.emit({ type: 'disconnected', error }),
        onTerminated: () => this.#terminated(),
      },
    )
  }

  start(): Promise<void> {
    return this.connection.start()
  }

  get node(): string {
    return this.#node
  }

  /** The highest revision this client has seen (in a welcome, a result or an event). */
  get revision(): number {
    return this.#revision
  }

  get session(): RemoteProcess {
    if (this.#session === undefined) throw new InvalidArgument('not connected yet')
    return this.#session
  }

  get names(): NameRegistryApi {
    this.#names ??= new RemoteNames(this)
    return this.#names
  }

  status(): Stream<ClientStatus> {
    return this.#status.subscribe()
  }

  // ProcessHost
  ownerOf(pid: string): OwnerRef | undefined {
    return this.#processes.get(pid)
  }

  schemaOf(kind: string): StandardSchemaV1 | undefined {
    return this.#schemas.get(kind)
  }

  noteRevision(revision: number): void {
    if (revision > this.#revision) this.#revision = revision
  }

  forget(proc: RemoteProcess): void {
    this.#processes.delete(proc.id)
    // The session's own process exited: the session is over, and so is this client.
    if (proc === this.#session) this.connection.terminate()
  }

  /**
   * Declares a kind on the server (`fields`, `indexes`, `resident`). A `schema` cannot cross the wire: the
   * client validates this client's writes with it, as the engine would.
   */
  async defineKind<T = unknown>(kind: string, options: KindOptions<T> = {}): Promise<void> {
    if (
      options.schema !== undefined &&
      typeof options.schema['~standard']?.validate !== 'function'
    ) {
      throw new InvalidArgument(
        'schema must be a Standard Schema validator (zod, valibot, arktype, …)',
      )
    }
    await this.connection.call('defineKind', () => ({
      kind,
      options: wireOptions({
        fields: options.fields,
        indexes: options.indexes,
        resident: options.resident,
      }),
    }))
    if (options.schema === undefined) this.#schemas.delete(kind)
    else this.#schemas.set(kind, options.schema)
  }

  process(name: string): RemoteProcess {
    if (this.connection.closed) throw new Closed('the client is closed')
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
      throw new InvalidArgument('process name must be a non-empty string of at most 200 characters')
    }
    const proc = new RemoteProcess(this, this.#childPid(), name)
    this.#processes.set(proc.id, proc)
    // Pipelined: calls made as this process right after are queued behind its opening. The pid
    // is read when the call goes out, and opening is safe to repeat on a new session, so it is
    // re-sent rather than failed if the session is lost before the answer: `write: false`
    // overrides the operation table, for which an open is a write the server answers once.
    this.connection
      .call('process.open', () => ({ name, pid: proc.id }), { write: false })
      .then(
        () => (proc.opened = true),
        (error: unknown) => proc.markExited({ error }),
      )
    return proc
  }

  spawn(name: string, fn: ProcessFunction, options: SpawnOptions = {}): RemoteProcess {
    if (typeof fn !== 'function') throw new InvalidArgument('spawn needs a function')
    const proc = this.process(name)
    return runProcess(proc, fn, options)
  }

  async get<T = unknown>(
    kind: string,
    id: string | number,
    options: { signal?: AbortSignal } = {},
  ): Promise<DataspaceRecord<T> | undefined> {
    const record = (await this.connection.call('get', () => ({ kind, id }), {
      signal: options.signal,
    })) as DataspaceRecord<T> | null
    if (record === null) return undefined
    this.noteRevision(record.revision)
    return record
  }

  async list<T = unknown>(kind: string, options: ListOptions = {}): Promise<ListResult<T>> {
    const result = (await this.connection.call(
      'list',
      () => ({ kind, options: wireOptions(options) }),
      { signal: options.signal },
    )) as ListResult<T>
    this.noteRevision(result.revision)
    return result
  }

  watch<T = unknown>(kind: string, options: WatchOptions = {}): Watch<T> {
    const spec = watchSpec(kind, options)
    const accept = (event: WatchEvent, reopened: boolean): readonly WatchEvent[] =>
      spec.accept(event, reopened)
    const stream = new RemoteStream(
      this.connection,
      {
        ...spec,
        accept: (event, reopened) => {
          if ('revision' in event) this.noteRevision(event.revision)
          return accept(event, reopened)
        },
      },
      options.signal,
    )
    return stream as unknown as Watch<T>
  }

  explain(kind: string, options: Selector = {}): Promise<ExplainResult> {
    return this.connection.call('explain', () => ({
      kind,
      options: wireOptions(options),
    })) as Promise<ExplainResult>
  }

  groups(scope = 'default'): ProcessGroupsApi {
    return new RemoteGroups(this, scope)
  }

  kv(bucket: string): KvApi {
    return new RemoteKv(this, bucket)
  }

  /** Ends the session (everything it owned is retracted, in one commit per process) and disconnects. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const session = this.#session
      // As `ds.close()` in the engine: every process exits with reason `shutdown`.
      // Disconnected, the exit could wait forever: the server's lease ends the session instead.
      if (session !== undefined && this.connection.connected) {
        await session.exit('shutdown').catch(() => {})
      }
      this.connection.terminate()
    })()
    return this.#closing
  }

  #childPid(): string {
    return `${this.session.id}.${++this.#childCounter}`
  }

  async #onSession(welcome: WelcomeMessage, first: boolean): Promise<void> {
    this.#node = welcome.node
    this.noteRevision(welcome.revision)
    const { session } = welcome
    if (first) {
      this.#session = new RemoteProcess(this, session.pid, 'session')
      this.#session.opened = true
      this.#processes.set(session.pid, this.#session)
      this.#status.emit({ type: 'connected', session: session.id, pid: session.pid })
      return
    }
    if (welcome.resumed) {
      this.#status.emit({ type: 'reconnected', session: session.id, pid: session.pid })
      return
    }
    const previous = this.session
    const previousPid = previous.id
    // New pids: the session's, and a fresh child number for every live child (pids are never reused).
    const live = [...this.#processes.values()]
    this.#processes.clear()
    const reopened: RemoteProcess[] = []
    for (const proc of live) {
      proc.repid(proc === previous ? session.pid : `${session.pid}.${++this.#childCounter}`)
      this.#processes.set(proc.id, proc)
      // A child whose own opening has not been answered yet is opened by that call (re-sent).
      if (proc !== previous && proc.opened) reopened.push(proc)
    }
    const { restored, conflicts } = await restore(this.connection, this.owned, reopened)
    this.#status.emit({
      type: 'session-lost',
      session: session.id,
      previousPid,
      pid: session.pid,
      restored,
    })
    for (const conflict of conflicts) this.#status.emit({ type: 'conflict', ...conflict })
  }

  #terminated(): void {
    const reason = this.#closing === undefined ? 'closed' : 'shutdown'
    for (const proc of [...this.#processes.values()]) proc.markExited(reason)
    this.#status.endAll()
  }
}
