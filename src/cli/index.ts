/**
 * The `dataspace` command line: `serve` runs the server with an embedded dataspace, the other
 * commands talk to a server over the HTTP API (`docs/cli.md`).
 *
 * @example
 * import { run } from './src/cli/index.js'
 * const io = { stdout: console.log, stderr: console.error, env: process.env }
 * process.exitCode = await run(['list', 'api.route'], io, AbortSignal.timeout(5000))
 * @module
 */
export { COMMANDS, helpText, run } from './run.js'
export { serveSettings } from './serve.js'
export { DEFAULT_BACKEND, parseBackend } from './backend-spec.js'
export type { BackendSpec } from './backend-spec.js'
export type { ServeSettings } from './serve.js'
export { CliError, DEFAULT_URL, HttpClient, UsageError } from './http-client.js'
export type { Query, SseEvent } from './http-client.js'
export { formatTable } from './output.js'
export type { CliIo, Column, OutputMode } from './output.js'
export type { Command, CommandContext } from './command.js'
