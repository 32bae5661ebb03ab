import { QueryReader } from '../query-params.js'
import { STREAMED } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'

/** The kind `/metrics` is authorized against: only a token with `admin` on it may scrape. */
export const METRICS_KIND = '$metrics'

/** `GET /metrics`: Prometheus text exposition of the server's own registry. */
export function metricsRoutes(router: Router<Handler>): void {
  router.add('GET', '/metrics', scrape)
}

async function scrape(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  // Not `authorize`: a scrape is not an operation and must not count itself.
  ctx.require(METRICS_KIND, 'admin')
  const { contentType, body } = await ctx.server.metrics.scrape()
  ctx.res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' })
  ctx.res.end(body)
  return STREAMED
}
