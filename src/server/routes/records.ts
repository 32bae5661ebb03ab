import { NotFound } from '../../errors/index.js'
import { listOptionsFrom, QueryReader, selectorFrom } from '../query-params.js'
import { json } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'

/**
 * Records: get, list, explain, assert (PUT) and retract (DELETE). Each route only turns the
 * request into the operation's wire arguments and the result into a reply; the checks are the
 * operation table's (`ctx.run`).
 */
export function recordRoutes(router: Router<Handler>): void {
  router
    .add('GET', '/v1/records/:kind', list)
    .add('GET', '/v1/records/:kind/*id', get)
    .add('PUT', '/v1/records/:kind/*id', put)
    .add('DELETE', '/v1/records/:kind/*id', retract)
    .add('GET', '/v1/explain/:kind', explain)
}

async function get(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const kind = ctx.param('kind')
  const id = ctx.param('id')
  const record = await ctx.run('get', { kind, id })
  if (record === null) throw new NotFound(`no record ${kind}/${id}`)
  return json(record)
}

async function list(ctx: RequestContext): Promise<Reply> {
  const options = listOptionsFrom(ctx.query)
  return json(await ctx.run('list', { kind: ctx.param('kind'), options }))
}

async function explain(ctx: RequestContext): Promise<Reply> {
  const options = selectorFrom(ctx.query)
  return json(await ctx.run('explain', { kind: ctx.param('kind'), options }))
}

/** Body `{ data, labels?, ttl?, ifRevision?, owner?: null }`: the session's process asserts. */
async function put(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('asserting a record').process.id
  const body = await ctx.body()
  // `owner` other than null is refused by the engine itself (InvalidArgument, 400).
  const { data, ...options } = body
  const args = { pid, kind: ctx.param('kind'), id: ctx.param('id'), data, options }
  return json(await ctx.run('assert', args))
}

/** `?ifRevision=`: the session's process retracts; answers the retracted record. */
async function retract(ctx: RequestContext): Promise<Reply> {
  const ifRevision = new QueryReader(ctx.query, ['ifRevision']).integer('ifRevision')
  const pid = ctx.requireSession('retracting a record').process.id
  const options = ifRevision === undefined ? {} : { ifRevision }
  return json(
    await ctx.run('retract', { pid, kind: ctx.param('kind'), id: ctx.param('id'), options }),
  )
}
