import type { AssertOptions, RetractOptions } from '../../model/index.js'
import { InvalidArgument, NotFound } from '../../errors/index.js'
import { listOptionsFrom, QueryReader, selectorFrom } from '../query-params.js'
import { assertAdds } from '../record-quota.js'
import { defined, json } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'

/** Records: get, list, explain, assert (PUT) and retract (DELETE). */
export function recordRoutes(router: Router<Handler>): void {
  router
    .add('GET', '/v1/records/:kind', list)
    .add('GET', '/v1/records/:kind/*id', get)
    .add('PUT', '/v1/records/:kind/*id', put)
    .add('DELETE', '/v1/records/:kind/*id', retract)
    .add('GET', '/v1/explain/:kind', explain)
}

async function get(ctx: RequestContext): Promise<Reply> {
  const kind = ctx.param('kind')
  ctx.authorize('get', kind, 'read')
  new QueryReader(ctx.query, [])
  const id = ctx.param('id')
  const record = await ctx.ds.get(kind, id)
  if (record === undefined) throw new NotFound(`no record ${kind}/${id}`)
  return json(record)
}

async function list(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('list', ctx.param('kind'), 'read')
  return json(await ctx.ds.list(ctx.param('kind'), listOptionsFrom(ctx.query)))
}

async function explain(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('explain', ctx.param('kind'), 'read')
  return json(await ctx.ds.explain(ctx.param('kind'), selectorFrom(ctx.query)))
}

/** Body `{ data, labels?, ttl?, ifRevision?, owner?: null }`: the session's process asserts. */
async function put(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('assert', ctx.param('kind'), 'write')
  new QueryReader(ctx.query, [])
  const session = ctx.requireSession('asserting a record')
  const body = await ctx.body()
  if (!('data' in body)) throw new InvalidArgument('request body needs "data"')
  // `owner` other than null is refused by the engine itself (InvalidArgument, 400).
  const options = defined({
    labels: body.labels,
    ttl: body.ttl,
    ifRevision: body.ifRevision,
    owner: body.owner,
  }) as AssertOptions
  ctx.checkRecords(session, assertAdds(ctx.ds, session, ctx.param('kind'), ctx.param('id'), body))
  const record = await session.process.assert(
    ctx.param('kind'),
    ctx.param('id'),
    body.data,
    options,
  )
  return json(record)
}

/** `?ifRevision=`: the session's process retracts; answers the retracted record. */
async function retract(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('retract', ctx.param('kind'), 'write')
  const ifRevision = new QueryReader(ctx.query, ['ifRevision']).integer('ifRevision')
  const session = ctx.requireSession('retracting a record')
  const options: RetractOptions = ifRevision === undefined ? {} : { ifRevision }
  return json(await session.process.retract(ctx.param('kind'), ctx.param('id'), options))
}
