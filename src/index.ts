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
export * from './engine/index.js'
export * from './errors/index.js'
export * from './groups/index.js'
export * from './kv/index.js'
export * from './names/index.js'
export { compileGlob, escapeGlob, parseFieldSelector, parseLabelSelector } from './query/index.js'
export type { CompiledGlob, FieldSelector, LabelSelector } from './query/index.js'
