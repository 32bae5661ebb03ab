/**
 * The engine: records, processes, watches and selectors, in process.
 * @module
 */
export { createDataspace, Dataspace, WATCH_KIND } from './dataspace.js'
export type { DataspaceOptions, DataspaceStats, Observation } from './dataspace.js'
export type * from './types.js'
export type { Transaction, AssertInput } from './transaction.js'
export type { LocalProcess } from './process.js'
