import { QueryReader } from '../query-params.js'
import { json, NO_CONTENT } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'
import { openSession } from '../session-quota.js'

/** Sessions (processes with a lease) and the liveness / readiness probes. */
export function sessionRoutes(router: Router<Handler>): void {
  router
    .add('POST', '/v1/sessions', open)
    .add('POST', '/v1/sessions/:session/heartbeat', heartbeat)
    .add('DELETE', '/v1/sessions/:session', end)
    .add('GET', '/livez', livez)
    .add('GET', '/readyz', readyz)
}

/**
 * Body `{ name, ttl? }` → 201 `{ session, pid, ttl, resumeToken }`; `TooLarge` past the session
 * caps (`maxSessions`, `maxSessionsPerToken`, `maxSessionsPerAddress`).
 */
async function open(ctx: RequestContext): Promise<Reply> {
  ctx.named('sessions.open')
  new QueryReader(ctx.query, [])
  const body = await ctx.body()
  const session = openSession(
    ctx.server,
    body.name,
    body.ttl,
    ctx.principal,
    ctx.req.socket.remoteAddress,
  )
  return json(
    {
      session: session.id,
      pid: session.process.id,
      ttl: session.ttl,
      resumeToken: session.resumeToken,
    },
    201,
  )
}

/** Renews the lease → `{ ttl, expiresAt }`. */
async function heartbeat(ctx: RequestContext): Promise<Reply> {
  ctx.named('sessions.heartbeat')
  new QueryReader(ctx.query, [])
  const session = ctx.sessionById(ctx.param('session'))
  return json({ ttl: session.ttl, expiresAt: session.expiresAt })
}

/** Ends the session now: its process exits and all it owned is retracted before the 204. */
async function end(ctx: RequestContext): Promise<Reply> {
  ctx.named('sessions.end')
  new QueryReader(ctx.query, [])
  await ctx.sessionById(ctx.param('session')).process.exit('normal')
  return NO_CONTENT
}

async function livez(): Promise<Reply> {
  return json({ live: true })
}

/**
 * Ready while the server accepts requests, the dataspace is open and its database answers (on a
 * follower: while it reads the writer's feed). `role` is `writer`, `follower` for a server
 * over a store another server writes (docs/server.md, "Followers"), or `node` for one node of
 * a cluster that writes the store in turns with the others (docs/cluster.md).
 * `cluster` counts the live nodes (docs/cluster.md, "Membership"); it lists them only when auth
 * is off, since probes take no token and the members' addresses are for `GET /v1/nodes` (read
 * on `$nodes`). When not ready, `reasons` says why, one line each: a load balancer's log then
 * names the cause (a database out of reach: writes would only queue and time out).
 */
async function readyz(ctx: RequestContext): Promise<Reply> {
  // With auth on, a probe takes no token: it gets the causes, not the errors (which may name
  // internal hosts); the log and an authorized `GET /v1/nodes` have them.
  const open = ctx.server.options.auth === undefined
  const cluster = await ctx.server.membership.view(open)
  const reasons: string[] = []
  if (!ctx.server.accepting) reasons.push('the server is shutting down')
  if (ctx.ds.closed) reasons.push('the dataspace is closed')
  const role = ctx.ds.role
  const health = ctx.ds.backendHealth
  if (health?.ok === false) {
    const since = new Date(health.since).toISOString()
    const error = open ? ` (${health.error})` : ''
    // A follower writes nothing: what fails is its reading of the writer's feed.
    reasons.push(
      role === 'writer'
        ? `backend ${health.backend}: writes failing since ${since}${error}; retrying`
        : role === 'follower'
          ? `backend ${health.backend}: this follower cannot read the writer’s feed since ${since}${error}`
          : `backend ${health.backend}: this cluster node cannot write or follow the store since ${since}${error}; retrying`,
    )
  }
  // The members are read from the database: when that fails, so would any read of it.
  if (cluster.error !== undefined) {
    reasons.push(`database: cluster members unreadable${open ? ` (${cluster.error})` : ''}`)
  }
  const ready = reasons.length === 0
  const shown = open || cluster.error === undefined ? cluster : { error: 'unreadable' }
  return json(
    {
      ready,
      node: ctx.server.membership.id,
      role,
      cluster: shown,
      ...(ready ? {} : { reasons }),
    },
    ready ? 200 : 503,
  )
}
