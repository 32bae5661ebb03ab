import type { Kernel } from '../engine/index.js'
import type { DataspaceRecord, Json, PidLike, Watch } from '../model/types.js'
import { NAME_KIND } from '../model/names.js'
import type { NameBinding, NameData, NameRegistryApi } from '../model/names.js'
import { freezeJson, toPid } from '../model/validate.js'
import { Conflict, InvalidArgument, NameTaken, NotFound, NotOwner } from '../errors/index.js'

const MAX_NAME_LENGTH = 1024

/**
 * A global name registry with fence tokens, as records of kind `$name` owned by their holder: a
 * name is released in the same commit as its holder's exit. The fence is the revision of the
 * binding, so a holder that lost its name and got it back has a new fence, and work addressed to
 * the old binding is refused (`send({ name, fence })` → `Conflict`).
 */
export class NameRegistry implements NameRegistryApi {
  readonly #ds: Kernel

  constructor(ds: Kernel) {
    this.#ds = ds
  }

  async register(proc: PidLike, name: string, meta?: Json): Promise<{ fence: number }> {
    checkName(name)
    const pid = toPid(proc)
    this.#ds.checkProcess(pid)
    const data: NameData = {
      meta: meta === undefined ? null : freezeJson(meta, 'meta', this.#ds.maxValueBytes),
    }
    const { result } = await this.#ds.commit(null, (tx) => {
      const current = tx.read(NAME_KIND, name)
      if (current !== undefined) {
        // Registering a name you hold is idempotent: same binding, same fence.
        if (current.owner === pid) return current.createdRevision
        throw new NameTaken(
          `name "${name}" is registered by ${current.owner ?? 'nobody'}`,
          current.owner ?? '',
        )
      }
      return tx.assert({ kind: NAME_KIND, id: name, data: Object.freeze(data), owner: pid })
        .revision
    })
    return { fence: result }
  }

  async whereis(name: string): Promise<Omit<NameBinding, 'name'> | undefined> {
    checkName(name)
    const record = await this.#ds.get(NAME_KIND, name)
    if (record === undefined) return undefined
    const { pid, fence, meta } = binding(record)
    return { pid, fence, meta }
  }

  async unregister(proc: PidLike, name: string): Promise<void> {
    checkName(name)
    const pid = toPid(proc)
    await this.#ds.commit(null, (tx) => {
      const current = tx.read(NAME_KIND, name)
      if (current === undefined) throw new NotFound(`name "${name}" is not registered`)
      if (current.owner !== pid) {
        throw new NotOwner(
          `name "${name}" is registered by ${current.owner ?? 'nobody'}, not ${pid}`,
          current.owner,
        )
      }
      tx.remove(current, 'retract')
    })
  }

  async list(glob?: string): Promise<NameBinding[]> {
    return this.#ds.released(
      this.#ds.query(NAME_KIND, glob === undefined ? {} : { id: glob }).map(binding),
    )
  }

  watch(glob?: string): Watch<NameData> {
    return this.#ds.watch<NameData>(NAME_KIND, glob === undefined ? {} : { id: glob })
  }

  /** The holder of `name` for `send`; a fence that is not the current binding's is `Conflict`. */
  resolve(name: string, fence: number | undefined): string[] {
    checkName(name)
    const record = this.#ds.peek(NAME_KIND, name)
    if (fence !== undefined && record?.createdRevision !== fence) {
      throw new Conflict(
        `name "${name}" ${record === undefined ? 'is not registered' : `has fence ${record.createdRevision}`}, not ${fence}: the binding you addressed is gone`,
        record?.createdRevision ?? 0,
      )
    }
    const holder = record?.owner
    return holder === undefined || holder === null ? [] : [holder]
  }
}

function binding(record: DataspaceRecord): NameBinding {
  return {
    name: record.id,
    pid: record.owner ?? '',
    fence: record.createdRevision,
    meta: (record.data as NameData).meta,
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new InvalidArgument(
      `a name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters`,
    )
  }
}
