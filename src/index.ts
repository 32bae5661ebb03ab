/**
 * Dataspace: shared, owned, live state for processes.
 *
 * @example
 * import { createDataspace } from 'dataspace'
 * const ds = createDataspace()
 * const subsystem = ds.process('health')
 * await subsystem.assert('api.route', 'health', { path: '/health', method: 'GET' })
 * const { items } = await ds.list('api.route')
 */
export type * from './model/index.js'
export { GROUP_MEMBER_KIND, NAME_KIND, checkBucket, DEFAULT_MAX_VALUE_SIZE } from './model/index.js'
export { nextBatch, QueuedStream } from './streams/index.js'
export { createDataspace, Dataspace, openDataspace } from './dataspace.js'
export { BYTE_BOUND_NAMES, valueBytes, WATCH_KIND } from './engine/index.js'
export type {
  AssertInput,
  ByteBounds,
  DataspaceOptions,
  DataspaceStats,
  LocalProcess,
  Observation,
  Transaction,
} from './engine/index.js'
export * from './errors/index.js'
export { ProcessGroups } from './groups/index.js'
export { KvBucket } from './kv/index.js'
export { NameRegistry } from './names/index.js'
export { compileGlob, escapeGlob, parseFieldSelector, parseLabelSelector } from './query/index.js'
export type { CompiledGlob, FieldSelector, LabelSelector } from './query/index.js'
