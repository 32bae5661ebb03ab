import type { Json } from '../../model/index.js'
import { InvalidArgument, NotFound } from '../../errors/index.js'
import type { KvPutOptions } from '../../model/index.js'
import { kvScanOptionsFrom, QueryReader } from '../query-params.js'
import { checkOwnPid, defined, json } from '../request-context.js'
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

/** The record kind behind a bucket: rights on KV are rights on `$kv.<bucket>`. */
function kvKind(bucket: string): string {
  return `$kv.${bucket}`
}

/** `?prefix=&glob=&limit=&continue=` → `{ entries, revision, continue? }`. */
async function scan(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('kv.scan', kvKind(ctx.param('bucket')), 'read')
  return json(await ctx.ds.kv(ctx.param('bucket')).scan(kvScanOptionsFrom(ctx.query)))
}

/** The entry, or 404; `GET …/watch` with `Accept: text/event-stream` is the bucket's watch. */
async function get(ctx: RequestContext): Promise<Reply> {
  const bucket = ctx.param('bucket')
  const key = ctx.param('key')
  ctx.authorize('kv.get', kvKind(bucket), 'read')
  if (key === 'watch' && ctx.wantsEventStream) return watchKv(ctx, bucket)
  new QueryReader(ctx.query, [])
  const entry = await ctx.ds.kv(bucket).get(key)
  if (entry === undefined) throw new NotFound(`no key ${key} in bucket ${bucket}`)
  return json(entry)
}

/**
 * Body `{ value, ttl?, ifRevision?, owner? }` → the entry. `owner: "session"` binds the key to
 * the caller's session (it goes when the session goes); any other string is a pid of the
 * caller's session (its process or a child), else `Forbidden`.
 */
async function put(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('kv.put', kvKind(ctx.param('bucket')), 'write')
  new QueryReader(ctx.query, [])
  const body = await ctx.body()
  if (!('value' in body)) throw new InvalidArgument('request body needs "value"')
  const owner =
    body.owner === 'session' ? ctx.requireSession('owner: "session"').process.id : body.owner
  if (owner !== undefined && typeof owner !== 'string') {
    throw new InvalidArgument('"owner" must be "session" or a pid')
  }
  // A key is charged to its owner: only the caller's own processes, as over WebSocket.
  if (owner !== undefined) checkOwnPid(ctx.session, owner)
  const options = defined({ ttl: body.ttl, ifRevision: body.ifRevision, owner }) as KvPutOptions
  // An owned key counts against the session making the request, if there is one.
  if (owner !== undefined && ctx.session !== undefined) ctx.checkRecords(ctx.session)
  const bucket = ctx.ds.kv(ctx.param('bucket'))
  return json(await bucket.put(ctx.param('key'), body.value as Json, options))
}

/** `?ifRevision=` → `{ deleted }`, false when the key did not exist. */
async function remove(ctx: RequestContext): Promise<Reply> {
  ctx.authorize('kv.delete', kvKind(ctx.param('bucket')), 'write')
  const ifRevision = new QueryReader(ctx.query, ['ifRevision']).integer('ifRevision')
  const bucket = ctx.ds.kv(ctx.param('bucket'))
  const deleted = await bucket.delete(
    ctx.param('key'),
    ifRevision === undefined ? {} : { ifRevision },
  )
  return json({ deleted })
}
