// The servers the example runs on. One server, on `--backend` (memory, SQLite or PostgreSQL), or
// with `--cluster` three server nodes of one cluster: each its own engine and HTTP server, all
// writing one fresh PostgreSQL schema in turns, as one dataspace (docs/cluster.md). The schema is
// the example's own and is dropped at the end.
import { pino } from 'pino'
import pg from 'pg'
import { parseBackend } from '../../src/cli/backend-spec.js'
import type { Dataspace } from '../../src/index.js'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'
import { defineKinds } from './model.js'

export const CLUSTER_NODES = 3

export interface Servers {
  /** What they run on, for the first line of the output. */
  readonly label: string
  /** One engine per server, in the order of `urls`. */
  readonly nodes: readonly Dataspace[]
  readonly urls: readonly string[]
  close(): Promise<void>
}

/** One server over `spec`, with the kinds declared (non-resident: over a database they live there). */
export async function oneServer(spec: string): Promise<Servers> {
  const ds = await (await parseBackend(spec)).open()
  await defineKinds(ds)
  const server = await createServer({ ds, port: 0, logger: pino({ level: 'warn' }) })
  return {
    label: spec.split(':')[0] ?? spec,
    nodes: [ds],
    urls: [server.url],
    async close() {
      await server.close()
      await ds.close()
    },
  }
}

/**
 * Three cluster nodes on a fresh schema of `database`. The kinds are resident here: a cluster node
 * cannot watch a non-resident kind (other nodes' commits reach it through the feed, which lacks
 * the previous versions events carry), and the referee watches every worker.
 */
export async function clusterServers(database: string): Promise<Servers> {
  const schema = `ds_example_control_plane_${process.pid}`
  const url = new URL(database)
  url.searchParams.set('schema', schema)
  const spec = await parseBackend(url.toString(), { cluster: true })
  const nodes: Dataspace[] = []
  const servers: DataspaceServer[] = []
  const close = async (): Promise<void> => {
    for (const server of servers) await server.close()
    for (const ds of nodes) await ds.close()
    await dropSchema(database, schema)
  }
  try {
    for (let i = 0; i < CLUSTER_NODES; i++) {
      // Distinct node names (pids carry them: two nodes must never hand out one pid).
      const ds = await spec.open({ node: `server-${i + 1}` })
      nodes.push(ds)
      // Every node declares the same kinds, so none of them depends on when the others' land.
      await defineKinds(ds, { resident: true })
      servers.push(await createServer({ ds, port: 0, logger: pino({ level: 'warn' }) }))
    }
  } catch (error) {
    await close()
    throw error
  }
  return {
    label: `postgres schema ${schema}, ${CLUSTER_NODES} cluster nodes`,
    nodes,
    urls: servers.map((server) => server.url),
    close,
  }
}

async function dropSchema(database: string, schema: string): Promise<void> {
  const db = new pg.Client({ connectionString: database })
  await db.connect()
  try {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await db.end()
  }
}
