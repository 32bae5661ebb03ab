import type { Json, PidLike, Watch } from '../model/index.js'
import type { GroupMonitor, MemberMeta, MemberWithMeta, ProcessGroupsApi } from '../model/index.js'
import type {
  KvApi,
  KvEntry,
  KvPutOptions,
  KvScanOptions,
  KvScanResult,
  KvWatch,
} from '../model/index.js'
import type { NameBinding, NameRegistryApi } from '../model/index.js'
import { freezeJson } from '../model/validate.js'
import type { OperationName } from '../protocol/index.js'
import { checkBucket } from '../model/index.js'
import type { ProcessHost } from './remote-process.js'
import { checkMessage, wireOptions } from './remote-process.js'
import { RemoteStream } from './remote-stream.js'
import { kvWatchSpec, monitorSpec, watchSpec } from './stream-specs.js'

const pidOf = (p: PidLike): string => (typeof p === 'string' ? p : p.id)
const listOf = (pids: PidLike | readonly PidLike[]): string[] =>
  (Array.isArray(pids) ? (pids as readonly PidLike[]) : [pids as PidLike]).map(pidOf)

type Call = (
  op: OperationName,
  args: () => Record<string, unknown>,
  signal?: AbortSignal,
) => Promise<unknown>

// Whether a call is a write (never blindly re-sent) comes from the operation table.
function caller(host: ProcessHost): Call {
  return (op, args, signal) => host.connection.call(op, args, { signal })
}

/** `client.groups(scope)`: Erlang `pg` over the wire; joins of the client's processes are restored after a session loss. */
export class RemoteGroups implements ProcessGroupsApi {
  readonly scope: string
  readonly #host: ProcessHost
  readonly #call: Call

  constructor(host: ProcessHost, scope: string) {
    this.#host = host
    this.#call = caller(host)
    this.scope = scope
  }

  async join(group: string, pids: PidLike | readonly PidLike[], meta?: MemberMeta): Promise<'ok'> {
    const list = listOf(pids)
    // As the engine: metadata is JSON or InvalidArgument, never converted on the wire.
    if (meta !== undefined) freezeJson(meta, 'meta')
    const result = (await this.#call('groups.join', () => ({
      scope: this.scope,
      group,
      pids: list,
      ...(meta === undefined ? {} : { meta }),
    }))) as 'ok'
    for (const pid of list) {
      const owner = this.#host.ownerOf(pid)
      if (owner !== undefined) this.#host.owned.join(this.scope, group, owner, meta)
    }
    return result
  }

  async leave(group: string, pids: PidLike | readonly PidLike[]): Promise<'ok' | 'not_joined'> {
    const list = listOf(pids)
    const result = (await this.#call('groups.leave', () => ({
      scope: this.scope,
      group,
      pids: list,
    }))) as 'ok' | 'not_joined'
    for (const pid of list) {
      const owner = this.#host.ownerOf(pid)
      if (owner !== undefined) this.#host.owned.leave(this.scope, group, owner)
    }
    return result
  }

  members(group: string): Promise<string[]> {
    return this.#read('groups.members', { group }) as Promise<string[]>
  }

  localMembers(group: string): Promise<string[]> {
    return this.#read('groups.localMembers', { group }) as Promise<string[]>
  }

  membersWithMeta(group: string): Promise<MemberWithMeta[]> {
    return this.#read('groups.membersWithMeta', { group }) as Promise<MemberWithMeta[]>
  }

  async updateMeta(group: string, pid: PidLike, meta: MemberMeta): Promise<void> {
    const id = pidOf(pid)
    freezeJson(meta, 'meta')
    await this.#call('groups.updateMeta', () => ({ scope: this.scope, group, pid: id, meta }))
    const owner = this.#host.ownerOf(id)
    if (owner !== undefined) this.#host.owned.updateMeta(this.scope, group, owner, meta)
  }

  whichGroups(): Promise<string[]> {
    return this.#read('groups.whichGroups', {}) as Promise<string[]>
  }

  whichLocalGroups(): Promise<string[]> {
    return this.#read('groups.whichLocalGroups', {}) as Promise<string[]>
  }

  monitor(group?: string): GroupMonitor {
    return new RemoteStream(this.#host.connection, monitorSpec(this.scope, group))
  }

  broadcast(from: PidLike, group: string, message: unknown): Promise<number> {
    return this.#broadcast('groups.broadcast', from, group, message)
  }

  broadcastLocal(from: PidLike, group: string, message: unknown): Promise<number> {
    return this.#broadcast('groups.broadcastLocal', from, group, message)
  }

  async #broadcast(
    op: OperationName,
    from: PidLike,
    group: string,
    message: unknown,
  ): Promise<number> {
    // `from` is read when the call goes out, so a pid changed by a restore is the current one.
    const sender = this.#host.ownerOf(pidOf(from))
    checkMessage(message)
    return this.#call(op, () => ({
      scope: this.scope,
      from: sender?.id ?? pidOf(from),
      group,
      message,
    })) as Promise<number>
  }

  #read(op: OperationName, args: Record<string, unknown>): Promise<unknown> {
    return this.#call(op, () => ({ scope: this.scope, ...args }))
  }
}

/** `client.names`: the registry over the wire; names held by the client's processes are restored after a session loss. */
export class RemoteNames implements NameRegistryApi {
  readonly #host: ProcessHost
  readonly #call: Call

  constructor(host: ProcessHost) {
    this.#host = host
    this.#call = caller(host)
  }

  async register(proc: PidLike, name: string, meta?: Json): Promise<{ fence: number }> {
    const pid = pidOf(proc)
    if (meta !== undefined) freezeJson(meta, 'meta')
    const result = (await this.#call('names.register', () => ({
      pid,
      name,
      ...(meta === undefined ? {} : { meta }),
    }))) as { fence: number }
    const owner = this.#host.ownerOf(pid)
    if (owner !== undefined) this.#host.owned.register(owner, name, meta)
    this.#host.noteRevision(result.fence)
    return result
  }

  async whereis(name: string): Promise<Omit<NameBinding, 'name'> | undefined> {
    const binding = await this.#call('names.whereis', () => ({ name }))
    return (binding ?? undefined) as Omit<NameBinding, 'name'> | undefined
  }

  async unregister(proc: PidLike, name: string): Promise<void> {
    const pid = pidOf(proc)
    await this.#call('names.unregister', () => ({ pid, name }))
    this.#host.owned.unregister(name)
  }

  list(glob?: string): Promise<NameBinding[]> {
    return this.#call('names.list', () => (glob === undefined ? {} : { glob })) as Promise<
      NameBinding[]
    >
  }

  watch(glob?: string): Watch<{ readonly meta: Json }> {
    // A names watch is a watch of `$name` records, so it resumes like any record watch.
    return new RemoteStream(
      this.#host.connection,
      watchSpec('$name', glob === undefined ? {} : { id: glob }),
    ) as Watch<{ readonly meta: Json }>
  }
}

/** `client.kv(bucket)`: KV over the wire; keys bound to the client's processes are restored after a session loss. */
export class RemoteKv implements KvApi {
  readonly bucket: string
  readonly #host: ProcessHost
  readonly #call: Call

  constructor(host: ProcessHost, bucket: string) {
    // As `ds.kv()` of the engine: a bad name throws here, not on the first call.
    checkBucket(bucket)
    this.#host = host
    this.#call = caller(host)
    this.bucket = bucket
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const entry = await this.#call('kv.get', () => ({ bucket: this.bucket, key }))
    return (entry ?? undefined) as KvEntry | undefined
  }

  async put(key: string, value: Json, options: KvPutOptions = {}): Promise<KvEntry> {
    freezeJson(value, 'value') // JSON or InvalidArgument, as the engine; never converted
    const owner = options.owner === undefined ? undefined : this.#host.ownerOf(pidOf(options.owner))
    const entry = (await this.#call('kv.put', () => {
      const opts = wireOptions({
        ...options,
        owner: options.owner === undefined ? undefined : (owner?.id ?? pidOf(options.owner)),
      })
      return { bucket: this.bucket, key, value, options: opts }
    })) as KvEntry
    this.#host.noteRevision(entry.revision)
    this.#host.owned.noteKey(this.bucket, entry, (pid) => this.#host.ownerOf(pid))
    return entry
  }

  async delete(key: string, options: { ifRevision?: number } = {}): Promise<boolean> {
    const deleted = (await this.#call('kv.delete', () => ({
      bucket: this.bucket,
      key,
      options: wireOptions(options),
    }))) as boolean
    this.#host.owned.forgetKey(this.bucket, key)
    return deleted
  }

  async scan(options: KvScanOptions = {}): Promise<KvScanResult> {
    const result = (await this.#call(
      'kv.scan',
      () => ({ bucket: this.bucket, options: wireOptions(options) }),
      options.signal,
    )) as KvScanResult
    this.#host.noteRevision(result.revision)
    return result
  }

  watch(
    options: { prefix?: string; glob?: string; fromRevision?: number; signal?: AbortSignal } = {},
  ): KvWatch {
    return new RemoteStream(
      this.#host.connection,
      kvWatchSpec(this.bucket, options),
      options.signal,
    )
  }
}
