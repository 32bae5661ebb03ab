import type { Dataspace } from '../dataspace.js'
import type { DataspaceOptions } from '../engine/index.js'

/** A parsed `--backend` value: what to show in logs, and how to open the dataspace. */
export interface BackendSpec {
  readonly label: string
  open(options?: DataspaceOptions): Promise<Dataspace>
}
