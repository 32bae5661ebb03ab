import type { ClaimOptions, SendTarget, TransactRequest } from '../../model/index.js'
import { InvalidArgument } from '../../errors/index.js'
import { targetKind, transactionRights } from '../op-rights.js'
import { QueryReader } from '../query-params.js'
import { transactionAdds } from '../record-quota.js'
import { defined, json } from '../request-context.js'
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
  ctx.named('transact')
  const session = ctx.requireSession('a transaction')
  const body = await ctx.body()
  if (!Array.isArray(body.then))
    throw new InvalidArgument('request body needs "then": an array of ops')
  if (body.if !== undefined && !Array.isArray(body.if)) {
    throw new InvalidArgument('"if" must be an array of conditions')
  }
  const request = defined({ if: body.if, then: body.then }) as TransactRequest
  authorizeTransaction(ctx, request)
  ctx.checkRecords(session, transactionAdds(ctx.ds, session, request.then))
  return json(await session.process.transact(request))
}

/**
 * Body `{ id?, fields?, labels?, orderBy?, patch, owner? }` → `{ record }`, with `record` absent
 * when nothing matched (a JSON body cannot carry `undefined`, and `null` would look like a record).
 */
async function claim(ctx: RequestContext): Promise<Reply> {
  // A claim answers the record it took, so it reads as well as writes.
  ctx.authorize('claim', ctx.param('kind'), 'write')
  ctx.require(ctx.param('kind'), 'read')
  new QueryReader(ctx.query, [])
  const session = ctx.requireSession('a claim')
  const body = await ctx.body()
  // A missing or non-object patch is refused by the engine's claim (InvalidArgument, 400).
  const options = defined({
    id: body.id,
    fields: body.fields,
    labels: body.labels,
    orderBy: body.orderBy,
    patch: body.patch,
    owner: body.owner,
  }) as ClaimOptions
  ctx.checkRecords(session)
  const record = await session.process.claim(ctx.param('kind'), options)
  return json(record === undefined ? {} : { record })
}

/** Body `{ target, message }` → `{ delivered }`, how many recipients got it. */
async function send(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const session = ctx.requireSession('sending a message')
  const body = await ctx.body()
  if (body.target === undefined) throw new InvalidArgument('request body needs "target"')
  if (!('message' in body)) throw new InvalidArgument('request body needs "message"')
  ctx.authorize('send', targetKind(body.target), 'write')
  const delivered = await session.process.send(body.target as SendTarget, body.message)
  return json({ delivered })
}

/** Checks every right the transaction needs; the metric label is its one kind, or `*`. */
function authorizeTransaction(ctx: RequestContext, request: TransactRequest): void {
  const rights = transactionRights(request)
  for (const [kind, right] of rights) ctx.require(kind, right)
  const kinds = new Set(rights.map(([kind]) => kind))
  const [only] = kinds
  ctx.authorize('transact', kinds.size === 1 && only !== undefined ? only : '*', 'write')
}
