import type { NodeView } from '../server/index.js'
import type { Command } from './command.js'
import { print } from './output.js'

/** A member as `GET /v1/nodes` answers it. */
type NodeEntry = NodeView

/** `nodes`: the servers of the cluster the server at `--url` belongs to. */
export const nodesCommand: Command = {
  name: 'nodes',
  usage: 'nodes [-o json]',
  summary: 'list the server nodes of the cluster',
  details: [
    'Asks GET /v1/nodes (with auth: read on $nodes). One row per registered node: its id,',
    'the URL it listens on, host and pid, when it started and last beat (database clock,',
    'UTC), and LIVE = yes while it beats (no: missed 3 heartbeats; pruned after 10). The node',
    'that answered is marked with *. On memory and SQLite the server is the only node.',
  ],
  arity: [0, 0],
  async run(ctx) {
    const body = (await ctx.client.request('GET', '/v1/nodes')) as { nodes: NodeEntry[] }
    print(ctx.io, ctx.mode, body, body.nodes, [
      { header: 'ID', cell: (n: NodeEntry) => (n.self ? `${n.id} *` : n.id) },
      { header: 'ADDRESS', cell: (n: NodeEntry) => n.address },
      { header: 'HOST', cell: (n: NodeEntry) => n.host },
      { header: 'PID', cell: (n: NodeEntry) => n.pid },
      { header: 'STARTED', cell: (n: NodeEntry) => time(n.startedAt) },
      { header: 'HEARTBEAT', cell: (n: NodeEntry) => time(n.heartbeatAt) },
      { header: 'LIVE', cell: (n: NodeEntry) => (n.live ? 'yes' : 'no') },
    ])
  },
}

/** ms since the epoch → `2026-12-05T22:30:01Z` (seconds are enough for people). */
function time(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
