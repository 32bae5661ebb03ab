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
  if (isPostgresSpec(spec)) return spec
  throw new CliError(
    'InvalidArgument',
    `unknown backend "${spec}": use memory, sqlite, sqlite:PATH or postgres://USER@HOST/DB`,
  )
}

/**
 * `spec` names the PostgreSQL backend (the only one a follower can read, or cluster nodes share:
 * see `parseBackend`).
 */
export function isPostgresSpec(spec: string): boolean {
  return /^postgres(ql)?:\/\/./.test(spec)
}

/**
 * `memory`, `sqlite` (the default file), `sqlite:PATH`, or a `postgres://` / `postgresql://`
 * URL (the PostgreSQL backend; schema `dataspace` unless the URL has `?schema=NAME`). `follow`
 * opens that schema as a follower of the server that writes it (PostgreSQL only: memory and
 * SQLite are one server's own store, with nobody else to follow). `cluster` opens it as a node
 * of a cluster, one of several servers that write it (PostgreSQL only too, and not with `follow`).
 */
export async function parseBackend(
  spec: string,
  { follow = false, cluster = false }: { follow?: boolean; cluster?: boolean } = {},
): Promise<BackendSpec> {
  checkBackendSpec(spec)
  if (follow && cluster) {
    throw new CliError(
      'InvalidArgument',
      'follow and cluster exclude each other: a follower never writes, a cluster node writes',
    )
  }
  if (cluster && !isPostgresSpec(spec)) {
    throw new CliError(
      'InvalidArgument',
      `cannot run "${spec}" in cluster mode: cluster nodes share a PostgreSQL schema ` +
        '(--backend postgres://…)',
    )
  }
  if (follow && !isPostgresSpec(spec)) {
    throw new CliError(
      'InvalidArgument',
      `cannot follow "${spec}": a follower reads a PostgreSQL schema another server writes ` +
        '(--backend postgres://…)',
    )
  }
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
  return postgresSpec(spec, { follow, cluster })
}
