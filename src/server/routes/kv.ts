import { InvalidArgument, NotFound } from '../../errors/index.js'
import { kvScanOptionsFrom, QueryReader } from '../query-params.js'
import { json } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'
import { watchKv } from './watches.js'

/**
 * KV buckets. Keys may contain `/` (the route takes the rest of the path). As with the in-process
 * API, writes need no session: a key without an owner is durable and anyone may write it.
 */
export function kvRoutes(router: Router<Handler>): void {
  router
    .add('GET', '/v1/kv/:bucket', scan)
    .add('GET', '/v1/kv/:bucket/*key', get)
    .add('PUT', '/v1/kv/:bucket/*key', put)
    .add('DELETE', '/v1/kv/:bucket/*key', remove)
}

/** `?prefix=&glob=&limit=&continue=` → `{ entries, revision, continue? }`. */
async function scan(ctx: RequestContext): Promise<Reply> {
  const options = kvScanOptionsFrom(ctx.query)
  return json(await ctx.run('kv.scan', { bucket: ctx.param('bucket'), options }))
}

/** The entry, or 404; `GET …/watch` with `Accept: text/event-stream` is the bucket's watch. */
async function get(ctx: RequestContext): Promise<Reply> {
  const bucket = ctx.param('bucket')
  const key = ctx.param('key')
  if (key === 'watch' && ctx.wantsEventStream) return watchKv(ctx, bucket)
  new QueryReader(ctx.query, [])
  const entry = await ctx.run('kv.get', { bucket, key })
  if (entry === null) throw new NotFound(`no key ${key} in bucket ${bucket}`)
  return json(entry)
}

/**
 * Body `{ value, ttl?, ifRevision?, owner? }` → the entry. `owner: "session"` binds the key to
 * the caller's session (it goes when the session goes); any other string is a pid of the
 * caller's session (its process or a child), else `Forbidden` (the operation table's rule).
 */
async function put(ctx: RequestContext): Promise<Reply> {
  new QueryReader(ctx.query, [])
  const { value, ttl, ifRevision, owner: given } = await ctx.body()
  const owner = given === 'session' ? ctx.requireSession('owner: "session"').process.id : given
  if (owner !== undefined && typeof owner !== 'string') {
    throw new InvalidArgument('"owner" must be "session" or a pid')
  }
  const options = { ttl, ifRevision, owner }
  return json(
    await ctx.run('kv.put', { bucket: ctx.param('bucket'), key: ctx.param('key'), value, options }),
  )
}

/** `?ifRevision=` → `{ deleted }`, false when the key did not exist. */
async function remove(ctx: RequestContext): Promise<Reply> {
  const ifRevision = new QueryReader(ctx.query, ['ifRevision']).integer('ifRevision')
  const options = ifRevision === undefined ? {} : { ifRevision }
  const bucket = ctx.param('bucket')
  return json({ deleted: await ctx.run('kv.delete', { bucket, key: ctx.param('key'), options }) })
}
