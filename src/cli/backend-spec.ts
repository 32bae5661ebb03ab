import { resolve } from 'node:path'
import { sqliteBackend } from '../backends/sqlite/index.js'
import { openDataspace } from '../dataspace.js'
import type { BackendSpec } from './opened-backend.js'
import { CliError } from './http-client.js'
import { postgresSpec } from './postgres-spec.js'

export type { BackendSpec }

/** Where `serve` keeps its data unless told: a SQLite file under the working directory. */
export const DEFAULT_BACKEND = 'sqlite:./.dataspace/dataspace.db'

/** `InvalidArgument` unless `spec` names a backend (checked before anything starts). */
export function checkBackendSpec(spec: string): string {
  if (spec === 'memory' || spec === 'sqlite' || /^sqlite:./.test(spec)) return spec
  if (/^postgres(ql)?:\/\/./.test(spec)) return spec
  throw new CliError(
    'InvalidArgument',
    `unknown backend "${spec}": use memory, sqlite, sqlite:PATH or postgres://USER@HOST/DB`,
  )
}

/**
 * `memory`, `sqlite` (the default file), `sqlite:PATH`, or a `postgres://` / `postgresql://`
 * URL (the PostgreSQL backend; schema `dataspace` unless the URL has `?schema=NAME`).
 */
export async function parseBackend(spec: string): Promise<BackendSpec> {
  checkBackendSpec(spec)
  if (spec === 'memory') return { label: 'memory', open: (options) => openDataspace(options) }
  if (spec === 'sqlite' || spec.startsWith('sqlite:')) {
    const path = resolve(
      spec === 'sqlite' ? DEFAULT_BACKEND.slice('sqlite:'.length) : spec.slice(7),
    )
    return {
      label: `sqlite:${path}`,
      open: (options) => openDataspace({ ...options, backend: sqliteBackend({ path }) }),
    }
  }
  return postgresSpec(spec)
}
