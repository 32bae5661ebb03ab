/**
 * The wire protocol, shared by the server and the client: the message model, the codec, the
 * operation table, and how errors and exit reasons cross the wire.
 * @module
 */
export * from './frames.js'
export { jsonCodec, textOf } from './codec.js'
export { exitReasonFromWire, exitReasonToWire } from './exit-reason.js'
export * from './operations.js'
export { errorFromWire, STATUS_BY_CODE, toWireError } from './wire-error.js'
export type { WireError, WireErrorCode } from './wire-error.js'
