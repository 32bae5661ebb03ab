/**
 * The WebSocket wire protocol, shared by the server and the client.
 * @module
 */
export * from './frames.js'
export { jsonCodec, textOf } from './codec.js'
export { exitReasonToWire } from './exit-reason.js'
