/**
 * The network server: WebSocket (`/v1/ws`) for clients, HTTP JSON for requests, SSE for
 * watches; sessions are processes with a lease. The wire protocol is `docs/protocol.md`.
 * @module
 */
export { loadTokenFile, TokenTable, validateAuth } from './auth.js'
export type { AuthOptions, Grant, Principal, Right, TokenSpec } from './auth.js'
export { createServer } from './create-server.js'
export type { DataspaceServer } from './create-server.js'
export { DEFAULT_LIMITS, DEFAULT_PORT, isLoopback } from './options.js'
export type { ServerLimits, ServerOptions } from './options.js'
export { ServerMetrics } from './metrics.js'
export type { ClusterView, NodeView } from './membership.js'
export { METRICS_KIND } from './routes/metrics.js'
export { SESSION_HEADER } from './request-context.js'
export { STATUS_BY_CODE, toWireError } from '../protocol/index.js'
export type { WireError, WireErrorCode } from '../protocol/index.js'
export { WS_PATH } from './ws/ws-endpoint.js'
