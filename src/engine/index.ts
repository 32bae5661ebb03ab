/**
 * The engine (the kernel): records, indexes, processes, the watch hub and the commit path, in
 * memory, doing no I/O itself. It owns its ports: the backend seam (`ports/backend.ts`) that
 * `backends/` implement, and the `Kernel` the facades use (`ports/kernel.ts`). `engine.ts` is a
 * façade over one file per part; the commit path is `commit.ts`.
 * @module
 */
export { Engine } from './engine.js'
export type { DataspaceOptions, DataspaceStats } from './engine-options.js'
export type { Kernel, TargetResolver } from './ports/kernel.js'
export { BYTE_BOUND_NAMES } from './memory-account.js'
export { valueBytes } from './record-bytes.js'
export type { ByteBounds } from './memory-account.js'
export { WATCH_KIND } from './watch-registry.js'
export type { Observation } from './watch-registry.js'
export type { Transaction, AssertInput } from './transaction.js'
export type { LocalProcess } from './process.js'
