import { Engine } from './engine/index.js'
import type { DataspaceOptions } from './engine/index.js'
import type { LoadedState, Membership } from './engine/ports/backend.js'
import { ProcessGroups } from './groups/index.js'
import { KvBucket } from './kv/index.js'
import type { DataspaceApi, SendTarget } from './model/index.js'
import { NameRegistry } from './names/index.js'

/**
 * The composition root: the kernel (`engine/`) with the facades wired on top. A facade is a
 * folder that works through the kernel's `Kernel` port; adding one is a method here and, if
 * `send` should reach it, a target resolver, with no engine edit.
 */
export class Dataspace extends Engine implements DataspaceApi {
  /**
   * The servers sharing this dataspace's backend (docs/cluster.md, "Membership"); `undefined`
   * when one server owns it (memory, SQLite). The server drives it; the engine never calls it.
   */
  readonly membership: Membership | undefined
  #names: NameRegistry | undefined

  constructor(options: DataspaceOptions = {}, loaded?: LoadedState) {
    super(options, loaded)
    const backend = options.backend
    this.membership = typeof backend === 'object' ? backend.membership : undefined
    this.registerTarget((target: SendTarget) => {
      if (typeof target !== 'object' || target === null) return undefined
      if ('group' in target)
        return this.groups(target.scope ?? 'default').distinctMembers(target.group)
      if ('name' in target) return this.names.resolve(target.name, target.fence)
      return undefined
    })
  }

  /**
   * Process groups of one scope, with Erlang `pg` semantics. Not cached: a `ProcessGroups` is
   * only its scope over the kernel (the memberships are records), and the scope comes from
   * clients (`groups.*` calls, `send({ group, scope })`), so a cache would grow with every
   * distinct scope a client names and never shrink.
   */
  groups(scope = 'default'): ProcessGroups {
    this.checkOpen()
    return new ProcessGroups(this, scope)
  }

  /** The name registry. */
  get names(): NameRegistry {
    this.checkOpen()
    return (this.#names ??= new NameRegistry(this))
  }

  /** A KV bucket (`maxValueSize` defaults to 1 MiB). */
  kv(bucket: string, options: { maxValueSize?: number } = {}): KvBucket {
    this.checkOpen()
    return new KvBucket(this, bucket, options)
  }
}

/**
 * Creates an in-process dataspace.
 *
 * @example
 * const ds = createDataspace()
 * const router = ds.process('router')
 * await router.assert('api.route', 'health', { path: '/health' })
 * for await (const event of ds.watch('api.route')) console.log(event.type)
 */
export function createDataspace(options: DataspaceOptions = {}): Dataspace {
  return new Dataspace(options)
}

/**
 * A dataspace over any backend, once its state is loaded: what a durable store that loads over
 * the network (PostgreSQL) needs. For memory and SQLite it is `createDataspace`, awaited.
 *
 * @example
 * const ds = await openDataspace({ backend: postgresBackend({ url }) })
 */
export async function openDataspace(options: DataspaceOptions = {}): Promise<Dataspace> {
  const backend = options.backend
  const ds =
    backend === undefined || backend === 'memory' || 'openSync' in backend
      ? new Dataspace(options)
      : new Dataspace(options, await backend.open())
  try {
    await ds.ready()
  } catch (error) {
    // Start-up failed after the backend opened (a follower that cannot listen): close it, so
    // that no pool or timer outlives the failure and keeps the process alive.
    await ds.close().catch(() => undefined)
    throw error
  }
  return ds
}
