/**
 * KV buckets with CAS, TTL and watch, as records of kind `$kv.<bucket>`.
 * @module
 */
export { KvBucket } from './kv-bucket.js'
export { checkBucket, DEFAULT_MAX_VALUE_SIZE } from '../model/kv.js'
export type * from '../model/kv.js'
