import type { Backend, LoadedState } from '../engine/ports/backend.js'

const EMPTY: LoadedState = Object.freeze({ revision: 0, records: [], kinds: [], sessions: [] })

/**
 * The default backend: nothing is written anywhere, the engine's memory is the store. It exists
 * so that every dataspace goes through the same seam; the engine skips the write path for it.
 */
export function memoryBackend(): Backend & { openSync(): LoadedState } {
  return {
    name: 'memory',
    capabilities: { durable: false, changes: false, query: false },
    openSync: () => EMPTY,
    open: async () => EMPTY,
    write: async () => undefined,
    close: async () => undefined,
  }
}
