import type { Stream, WatchEvent } from '../../model/index.js'
import { InvalidArgument } from '../../errors/index.js'
import type { GroupEvent } from '../../model/index.js'
import type { KvEvent } from '../../model/index.js'
import { kvWatchOptionsFrom, QueryReader, watchOptionsFrom } from '../query-params.js'
import { STREAMED } from '../request-context.js'
import type { Handler, Reply, RequestContext } from '../request-context.js'
import type { Router } from '../router.js'
import { pipeToSse, queuedLength, SseStream } from '../sse-stream.js'

/**
 * Server-sent event streams. KV watches and group monitors share their path with a KV key and a
 * group; the kv and groups routes hand over here when the client accepts `text/event-stream`.
 */
export function watchRoutes(router: Router<Handler>): void {
  router.add('GET', '/v1/watch/:kind', watchRecords)
}

/** `GET /v1/watch/:kind?id=&fields=&labels=&owner=&fromRevision=&snapshot=`. */
async function watchRecords(ctx: RequestContext): Promise<Reply> {
  const options = watchOptionsFrom(ctx.query, lastEventId(ctx))
  return serveSse(
    ctx,
    ctx.opener('watch', { kind: ctx.param('kind'), options }) as () => Stream<WatchEvent>,
    (event: WatchEvent) =>
      event.type === 'snapshot' || event.type === 'asserted' || event.type === 'retracted'
        ? event.revision
        : undefined,
  )
}

/**
 * `GET /v1/kv/:bucket/watch?prefix=&glob=&fromRevision=`. Only live changes carry an id: the
 * replay of current values comes in key order, not revision order, so resuming mid-replay
 * from one of its revisions could skip keys.
 */
export async function watchKv(ctx: RequestContext, bucket: string): Promise<Reply> {
  const options = kvWatchOptionsFrom(ctx.query, lastEventId(ctx))
  return serveSse(
    ctx,
    ctx.opener('kv.watch', { bucket, options }) as () => Stream<KvEvent>,
    (event: KvEvent) => (event.type !== 'reset' && event.isUpdate ? event.revision : undefined),
  )
}

/**
 * `GET /v1/groups/:scope/monitor?group=`. Monitors cannot resume (every connection starts with a
 * snapshot), so their events carry no id.
 */
export async function monitorGroups(ctx: RequestContext, scope: string): Promise<Reply> {
  // A Last-Event-ID is ignored: nothing here sets one, and a fresh snapshot is always correct.
  const group = new QueryReader(ctx.query, ['group']).string('group')
  return serveSse(
    ctx,
    ctx.opener('groups.monitor', { scope, group }) as () => Stream<GroupEvent>,
    (_event: GroupEvent) => undefined,
  )
}

function lastEventId(ctx: RequestContext): string | undefined {
  const header = ctx.req.headers['last-event-id']
  if (Array.isArray(header)) throw new InvalidArgument('Last-Event-ID is given more than once')
  return header === undefined || header === '' ? undefined : header
}

/**
 * Starts an SSE response for a stream `open` opens. The stream counts against the caller's
 * `maxStreamsPerSession` (`TooLarge` past it), and is opened before any header is written, so a
 * bad selector still answers a JSON 400.
 */
function serveSse<T extends { readonly type: string }>(
  ctx: RequestContext,
  open: () => Stream<T>,
  idOf: (event: T) => number | undefined,
): Reply {
  const { limits, onInternalError } = ctx.server.options
  const release = ctx.server.guard.openStream(ctx.limitKey)
  let source: Stream<T>
  try {
    source = open()
  } catch (error) {
    release()
    throw error
  }
  const sse = new SseStream(
    ctx.res,
    ctx.server.sse,
    limits,
    () => {
      release()
      source.close()
    },
    () => queuedLength(source),
    () => ctx.server.guard.hit('sseBufferBytes', { op: ctx.operation?.op }),
  )
  pipeToSse(source, sse, idOf).catch((error: unknown) => {
    onInternalError(error)
    sse.end()
  })
  return STREAMED
}
