import { QueryReader } from '../query-params.js'
import { json } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'

/** Process operations beyond one record: transact, claim and send. Each needs a session. */
export function writeRoutes(router: Router<Handler>): void {
  router
    .add('POST', '/v1/transact', transact)
    .add('POST', '/v1/claim/:kind', claim)
    .add('POST', '/v1/send', send)
}

/** Body `{ if?, then }` → `{ revision, results }`; all or nothing. */
async function transact(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('a transaction').process.id
  // The body is the request; its shape is checked once, by the operation table.
  return json(await ctx.run('transact', { pid, request: await ctx.body() }))
}

/**
 * Body `{ id?, fields?, labels?, orderBy?, patch, owner? }` → `{ record }`, with `record` absent
 * when nothing matched (a JSON body cannot carry `undefined`, and `null` would look like a record).
 */
async function claim(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('a claim').process.id
  // A missing or non-object patch is refused by the engine's claim (InvalidArgument, 400).
  const options = await ctx.body()
  const record = await ctx.run('claim', { pid, kind: ctx.param('kind'), options })
  return json(record === null ? {} : { record })
}

/** Body `{ target, message }` → `{ delivered }`, how many recipients got it. */
async function send(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const pid = ctx.requireSession('sending a message').process.id
  const { target, message } = await ctx.body()
  return json({ delivered: await ctx.run('send', { pid, target, message }) })
}
