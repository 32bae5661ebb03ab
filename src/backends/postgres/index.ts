/**
 * The PostgreSQL backend: durable, ordered by one revision row, with a change feed and selector
 * pushdown to expression and GIN indexes (docs/backends.md, "PostgreSQL").
 *
 * @example
 * import { postgresBackend } from './backends/postgres/index.js'
 * const backend = postgresBackend({ url: process.env.DATABASE_URL ?? '', schema: 'dataspace' })
 * @module
 */
export { POSTGRES_CONNECTION_DEFAULTS, postgresBackend } from './postgres-backend.js'
export type { PostgresBackend, PostgresBackendOptions } from './postgres-backend.js'
export { FEED_DEFAULTS } from './feed.js'
export type { FeedOptions, FeedTrim } from './feed.js'
export { fieldIndexNames, LABELS_INDEX, PRIMARY_INDEX, SCHEMA_VERSION } from './migrations.js'
export { selectQuery } from './pushdown.js'
