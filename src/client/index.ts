/**
 * The network client: `connect()` gives the same `DataspaceApi` as `createDataspace()`, over
 * the server's WebSocket protocol, with reconnects, session resume and restore.
 * @module
 */
export { connect } from './client.js'
export type { ConnectOptions, DataspaceClient } from './client.js'
export type { ClientStatus } from './status.js'
export type { BackoffOptions } from './backoff.js'
export type { RemoteProcess } from './remote-process.js'
