/**
 * Backends: where commits become durable (`docs/backends.md`).
 * @module
 */
export type * from '../engine/ports/backend.js'
