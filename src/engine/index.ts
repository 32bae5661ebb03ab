/**
 * The engine: records, processes, watches and selectors, in process.
 * @module
 */
export { createDataspace, Dataspace, openDataspace } from './dataspace.js'
export type { DataspaceOptions, DataspaceStats } from './dataspace.js'
export { BYTE_BOUND_NAMES } from './memory-account.js'
export { valueBytes } from './record-bytes.js'
export type { ByteBounds } from './memory-account.js'
export { WATCH_KIND } from './watch-registry.js'
export type { Observation } from './watch-registry.js'
export type * from './types.js'
export type { Transaction, AssertInput } from './transaction.js'
export type { LocalProcess } from './process.js'
export { nextBatch } from './stream-batch.js'
export { QueuedStream } from './queued-stream.js'
