import { QueryReader } from '../query-params.js'
import { json } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'

/**
 * The kind `GET /v1/nodes` is authorized against: a token needs `read` on it (a `*` reader has
 * it). Not a dataspace operation (nothing of the dataspace is read), so not in the operation
 * table: an HTTP route like `/metrics`.
 */
export const NODES_KIND = '$nodes'

/** `GET /v1/nodes`: the cluster's members (docs/cluster.md, "Membership"). */
export function nodeRoutes(router: Router<Handler>): void {
  router.add('GET', '/v1/nodes', nodes)
}

/** → `{ nodes: [{ id, address, host, pid, heartbeatMs, startedAt, heartbeatAt, live, self }] }`. */
async function nodes(ctx: RequestContext): Promise<Reply> {
  ctx.named('nodes', NODES_KIND)
  new QueryReader(ctx.query, [])
  ctx.require(NODES_KIND, 'read')
  return json({ nodes: await ctx.server.membership.members() })
}
