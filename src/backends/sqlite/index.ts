export { sqliteBackend } from './sqlite-backend.js'
export type { SqliteBackendOptions } from './sqlite-backend.js'
