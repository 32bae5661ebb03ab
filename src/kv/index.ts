/**
 * KV buckets with CAS, TTL and watch, as records of kind `$kv.<bucket>`.
 * @module
 */
export { checkBucket, DEFAULT_MAX_VALUE_SIZE, KvBucket } from './kv-bucket.js'
export type * from './types.js'
