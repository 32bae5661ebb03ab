/**
 * Streams: the one bounded queue behind every watch, mailbox and monitor, its mapped view, batch
 * reads, and the gate that holds an item back until its revision is durable.
 * @module
 */
export { QueuedStream } from './queued-stream.js'
export type { ByteMeter, Metering } from './queued-stream.js'
export { MappedStream } from './mapped-stream.js'
export { nextBatch } from './stream-batch.js'
export { durableGate, NeverDurable, revisionOf, whenDurable } from './durable-gate.js'
export type { DurabilitySource, DurableGate } from './durable-gate.js'
