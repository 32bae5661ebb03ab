import type { NodeView } from '../server/index.js'
import type { Command } from './command.js'
import { print } from './output.js'

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
    const body = (await ctx.client.request('GET', '/v1/nodes')) as { nodes: NodeView[] }
    print(ctx.io, ctx.mode, body, body.nodes, [
      { header: 'ID', cell: (n: NodeView) => (n.self ? `${n.id} *` : n.id) },
      { header: 'ADDRESS', cell: (n: NodeView) => n.address },
      { header: 'HOST', cell: (n: NodeView) => n.host },
      { header: 'PID', cell: (n: NodeView) => n.pid },
      { header: 'STARTED', cell: (n: NodeView) => time(n.startedAt) },
      { header: 'HEARTBEAT', cell: (n: NodeView) => time(n.heartbeatAt) },
      { header: 'LIVE', cell: (n: NodeView) => (n.live ? 'yes' : 'no') },
    ])
  },
}

/** ms since the epoch → `2026-12-05T22:30:01Z` (seconds are enough for people). */
function time(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
