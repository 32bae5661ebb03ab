import type { Message, WatchEvent, WatchOptions } from '../model/index.js'
import type { GroupEvent } from '../model/index.js'
import type { KvEvent, KvWatchOptions } from '../model/index.js'
import type { OperationName } from '../protocol/index.js'
import type { StreamSpec } from './remote-stream.js'

/** Client-side queue bound of a stream, in events (the engine's default watch buffer). */
export const CLIENT_BUFFER = 10_000

const SELECTOR_KEYS = ['id', 'fields', 'labels', 'owner'] as const

/**
 * A record watch. After a reconnect it resumes from the revision of the last event it
 * delivered: the server frames whole commits, so that revision is complete. If the server no
 * longer has that history it answers `reset` + `snapshot` itself.
 */
export function watchSpec(
  kind: string,
  options: WatchOptions,
  op: OperationName = 'watch',
): StreamSpec<WatchEvent> {
  const selector: Record<string, unknown> = {}
  for (const key of SELECTOR_KEYS) if (options[key] !== undefined) selector[key] = options[key]
  let last: number | undefined
  let started = false
  const first: Record<string, unknown> = { ...selector }
  if (options.fromRevision !== undefined) first.fromRevision = options.fromRevision
  if (options.snapshot !== undefined) first.snapshot = options.snapshot
  if (options.bufferSize !== undefined) first.bufferSize = options.bufferSize
  return {
    op,
    args(fresh) {
      let opts: Record<string, unknown>
      if (last !== undefined && !fresh) opts = { ...selector, fromRevision: last, snapshot: false }
      else if (!started) opts = first
      else opts = { ...selector, snapshot: true }
      started = true
      return { kind, options: opts }
    },
    accept(event) {
      if ('revision' in event) last = event.revision
      return [event]
    },
    overflow: { policy: 'resync', reset: { type: 'reset', reason: 'overflow' } },
    bufferSize: options.bufferSize ?? CLIENT_BUFFER,
  }
}

/**
 * A KV watch: resumes like a record watch. Changes replayed after a reconnect happened after
 * the watch opened, so they are marked `isUpdate`, unless the server had to start over (`reset`).
 */
export function kvWatchSpec(bucket: string, options: KvWatchOptions): StreamSpec<KvEvent> {
  const keys: Record<string, unknown> = {}
  if (options.prefix !== undefined) keys.prefix = options.prefix
  if (options.glob !== undefined) keys.glob = options.glob
  let last: number | undefined
  let started = false
  let resumed = false
  return {
    op: 'kv.watch',
    args(fresh) {
      let opts: Record<string, unknown> = keys
      if (!started && options.fromRevision !== undefined)
        opts = { ...keys, fromRevision: options.fromRevision }
      if (started && !fresh && last !== undefined) opts = { ...keys, fromRevision: last }
      resumed = started && !fresh && last !== undefined
      started = true
      return { bucket, options: opts }
    },
    accept(event) {
      if (event.type === 'reset') {
        resumed = false
        return [event]
      }
      last = event.revision
      return [resumed && !event.isUpdate ? { ...event, isUpdate: true } : event]
    },
    overflow: { policy: 'resync', reset: { type: 'reset' } },
    bufferSize: CLIENT_BUFFER,
  }
}

/** A group monitor. Monitors cannot replay, so a re-open starts over: `reset`, then the new snapshot. */
export function monitorSpec(scope: string, group: string | undefined): StreamSpec<GroupEvent> {
  return {
    op: 'groups.monitor',
    args: () => (group === undefined ? { scope } : { scope, group }),
    accept(event, reopened) {
      if (reopened && event.type === 'snapshot')
        return [{ type: 'reset', reason: 'history-gone' }, event]
      return [event]
    },
    overflow: { policy: 'resync', reset: { type: 'reset', reason: 'overflow' } },
    bufferSize: CLIENT_BUFFER,
  }
}

/** A process's mailbox. The server holds messages while the client is away; overflow drops and counts. */
export function mailboxSpec(pid: () => string): StreamSpec<Message> {
  return {
    op: 'messages',
    args: () => ({ pid: pid() }),
    accept: (message) => [message],
    overflow: {
      policy: 'drop',
      withDropped: (message, dropped) => ({
        ...message,
        dropped: (message.dropped ?? 0) + dropped,
      }),
    },
    bufferSize: CLIENT_BUFFER,
  }
}
