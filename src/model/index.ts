/**
 * The model: what records, events, processes and the facades' APIs are (types), and the rules
 * every side checks the same way (the value rule, ids, pids, TTLs, schemas, how a process
 * function runs). It imports nothing but `errors/`; everything above it shares it.
 * @module
 */
export type * from './types.js'
export type * from './api.js'
export type * from './groups.js'
export type * from './kv.js'
export type * from './names.js'
export { GROUP_MEMBER_KIND } from './groups.js'
export { checkBucket, DEFAULT_MAX_VALUE_SIZE } from './kv.js'
export { NAME_KIND } from './names.js'
export * from './validate.js'
export {
  DEFAULT_MAX_VALUE_BYTES,
  MAX_DEPTH,
  checkText,
  freezeJson,
  jsonBytes,
} from './json-value.js'
export { validate, validateSync } from './schema.js'
export { runProcess } from './run-process.js'
