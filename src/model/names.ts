import type { Json, PidLike, Watch } from './types.js'

/** The built-in kind of name bindings: id = the name, owner = the holder. */
export const NAME_KIND = '$name'

/** Where a name points: the holder, the fence token of the binding, and its metadata. */
export interface NameBinding {
  readonly name: string
  readonly pid: string
  /** The revision at which the binding was made; it changes only when the name changes hands. */
  readonly fence: number
  readonly meta: Json
}

export interface NameData {
  readonly meta: Json
}

/** The name registry's API (`ds.names`). */
export interface NameRegistryApi {
  register(proc: PidLike, name: string, meta?: Json): Promise<{ fence: number }>
  whereis(name: string): Promise<Omit<NameBinding, 'name'> | undefined>
  unregister(proc: PidLike, name: string): Promise<void>
  list(glob?: string): Promise<NameBinding[]>
  /** Bindings as records (`id` = name, `owner` = holder): a snapshot, then changes. */
  watch(glob?: string): Watch<NameData>
}
