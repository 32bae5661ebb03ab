import type { Json } from '../../model/index.js'
import { InvalidArgument, NotFound } from '../../errors/index.js'
import { QueryReader } from '../query-params.js'
import { checkOwnPid, json, NO_CONTENT } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'
import { monitorGroups } from './watches.js'

// Rights on groups and names are rights on the record kinds they are stored as.
const GROUPS = '$group.member'
const NAMES = '$name'

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
  ctx.authorize('groups.members', GROUPS, 'read')
  if (group === 'monitor' && ctx.wantsEventStream) return monitorGroups(ctx, scope)
  new QueryReader(ctx.query, [])
  return json({ members: await ctx.ds.groups(scope).members(group) })
}

/**
 * Body `{ pids?, meta? }`; without `pids`, the session's process joins; `pids` may name only the
 * session's process and its children (else `Forbidden`). → `{ result: 'ok' }`.
 */
async function join(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('groups.join', GROUPS, 'write')
  const { pids, meta } = await membership(ctx, 'joining a group')
  if (ctx.session !== undefined) ctx.checkRecords(ctx.session, pids.length)
  const groups = ctx.ds.groups(ctx.param('scope'))
  const result = await groups.join(ctx.param('group'), pids, meta)
  return json({ result })
}

/** Body `{ pids? }` → `{ result: 'ok' | 'not_joined' }`. */
async function leave(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('groups.leave', GROUPS, 'write')
  const { pids } = await membership(ctx, 'leaving a group')
  const result = await ctx.ds.groups(ctx.param('scope')).leave(ctx.param('group'), pids)
  return json({ result })
}

async function membership(
  ctx: RequestContext,
  what: string,
): Promise<{ pids: readonly string[]; meta: Json | undefined }> {
  new QueryReader(ctx.query, [])
  const body = await ctx.body()
  const meta = body.meta as Json | undefined
  if (body.pids === undefined) return { pids: [ctx.requireSession(what).process.id], meta }
  if (!Array.isArray(body.pids) || !body.pids.every((pid) => typeof pid === 'string')) {
    throw new InvalidArgument('"pids" must be an array of pids')
  }
  // Only the session's own processes, as over WebSocket: never another client's.
  return { pids: body.pids.map((pid: string) => checkOwnPid(ctx.session, pid)), meta }
}

/** `?glob=` → `{ names: [{ name, pid, fence, meta }] }`. */
async function listNames(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('names.list', NAMES, 'read')
  const glob = new QueryReader(ctx.query, ['glob']).string('glob')
  return json({ names: await ctx.ds.names.list(glob) })
}

/** `{ pid, fence, meta }`, or 404. */
async function whereis(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('names.whereis', NAMES, 'read')
  new QueryReader(ctx.query, [])
  const name = ctx.param('name')
  const binding = await ctx.ds.names.whereis(name)
  if (binding === undefined) throw new NotFound(`name "${name}" is not registered`)
  return json(binding)
}

/** Body `{ meta? }`: registers the session's process → `{ fence }`. */
async function register(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('names.register', NAMES, 'write')
  new QueryReader(ctx.query, [])
  const session = ctx.requireSession('registering a name')
  const body = await ctx.body()
  ctx.checkRecords(session)
  const result = await ctx.ds.names.register(
    session.process,
    ctx.param('name'),
    body.meta as Json | undefined,
  )
  return json(result)
}

/** Unregisters a name the session's process holds → 204. */
async function unregister(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('names.unregister', NAMES, 'write')
  new QueryReader(ctx.query, [])
  const session = ctx.requireSession('unregistering a name')
  await ctx.ds.names.unregister(session.process, ctx.param('name'))
  return NO_CONTENT
}
