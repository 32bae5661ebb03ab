import { InvalidArgument, NotFound } from '../../errors/index.js'
import { QueryReader } from '../query-params.js'
import { json, NO_CONTENT } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'
import { monitorGroups } from './watches.js'

/** Process groups and the name registry: membership and bindings of the session's process. */
export function registryRoutes(router: Router<Handler>): void {
  router
    .add('GET', '/v1/groups/:scope/:group', members)
    .add('POST', '/v1/groups/:scope/:group/join', join)
    .add('POST', '/v1/groups/:scope/:group/leave', leave)
    .add('GET', '/v1/names', listNames)
    .add('GET', '/v1/names/*name', whereis)
    .add('PUT', '/v1/names/*name', register)
    .add('DELETE', '/v1/names/*name', unregister)
}

/** `{ members }` with multiplicity; `…/monitor` with `Accept: text/event-stream` is the monitor. */
async function members(ctx: RequestContext): Promise<Reply> {
  const scope = ctx.param('scope')
  const group = ctx.param('group')
  if (group === 'monitor' && ctx.wantsEventStream) return monitorGroups(ctx, scope)
  new QueryReader(ctx.query, [])
  return json({ members: await ctx.run('groups.members', { scope, group }) })
}

/**
 * Body `{ pids?, meta? }`; without `pids`, the session's process joins; `pids` may name only the
 * session's process and its children (else `Forbidden`). → `{ result: 'ok' }`.
 */
async function join(ctx: RequestContext): Promise<Reply> {
  const { pids, meta } = await membership(ctx, 'joining a group')
  const args = { scope: ctx.param('scope'), group: ctx.param('group'), pids, meta }
  return json({ result: await ctx.run('groups.join', args) })
}

/** Body `{ pids? }` → `{ result: 'ok' | 'not_joined' }`. */
async function leave(ctx: RequestContext): Promise<Reply> {
  const { pids } = await membership(ctx, 'leaving a group')
  const args = { scope: ctx.param('scope'), group: ctx.param('group'), pids }
  return json({ result: await ctx.run('groups.leave', args) })
}

async function membership(
  ctx: RequestContext,
  what: string,
): Promise<{ pids: unknown; meta: unknown }> {
  new QueryReader(ctx.query, [])
  const { pids, meta } = await ctx.body()
  if (pids === undefined) return { pids: [ctx.requireSession(what).process.id], meta }
  // Over HTTP `pids` is a list; the operation table checks each is the session's own.
  if (!Array.isArray(pids)) throw new InvalidArgument('"pids" must be an array of pids')
  return { pids, meta }
}

/** `?glob=` → `{ names: [{ name, pid, fence, meta }] }`. */
async function listNames(ctx: RequestContext): Promise<Reply> {
  const glob = new QueryReader(ctx.query, ['glob']).string('glob')
  return json({ names: await ctx.run('names.list', { glob }) })
}

/** `{ pid, fence, meta }`, or 404. */
async function whereis(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const name = ctx.param('name')
  const binding = await ctx.run('names.whereis', { name })
  if (binding === null) throw new NotFound(`name "${name}" is not registered`)
  return json(binding)
}

/** Body `{ meta? }`: registers the session's process → `{ fence }`. */
async function register(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('registering a name').process.id
  const { meta } = await ctx.body()
  return json(await ctx.run('names.register', { pid, name: ctx.param('name'), meta }))
}

/** Unregisters a name the session's process holds → 204. */
async function unregister(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('unregistering a name').process.id
  await ctx.run('names.unregister', { pid, name: ctx.param('name') })
  return NO_CONTENT
}
