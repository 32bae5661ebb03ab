import assert from 'node:assert/strict'
import type { Stream, Watch, WatchEvent } from '../../src/index.js'

/**
 * Takes the events already queued on a watch. The engine pushes events synchronously at commit
 * time, so after an awaited write everything that write caused is queued: one macrotask turn
 * is enough to collect it without racing.
 */
export async function drain<T>(watch: Watch<T>): Promise<WatchEvent<T>[]> {
  return queued(watch)
}

/** The items already queued on any stream (group monitors, KV watches, mailboxes). */
export async function queued<T>(watch: Stream<T>): Promise<T[]> {
  const events: T[] = []
  for (;;) {
    const next = await Promise.race([
      pull(watch),
      new Promise<'idle'>((resolve) => setImmediate(() => resolve('idle'))),
    ])
    if (next === 'idle') return events
    pending.delete(watch)
    if (next.done === true) return events
    events.push(next.value)
  }
}

/** A `next()` that lost a race stays pending; the next read must take its result, not call again. */
const pending = new WeakMap<object, Promise<IteratorResult<unknown, undefined>>>()

function pull<T>(watch: Stream<T>): Promise<IteratorResult<T, undefined>> {
  let next = pending.get(watch) as Promise<IteratorResult<T, undefined>> | undefined
  if (next === undefined) {
    next = watch.next()
    pending.set(watch, next)
  }
  return next
}

/** Waits for the next event of a watch, failing after `ms`. */
export async function nextEvent<T>(watch: Watch<T>, ms = 2000): Promise<WatchEvent<T>> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no watch event within ${ms} ms`)), ms)
  })
  try {
    const next = await Promise.race([pull(watch), timeout])
    pending.delete(watch)
    if (next.done === true) throw new Error('watch ended')
    return next.value
  } finally {
    clearTimeout(timer)
  }
}

/** Applies watch events to a map of id → data: the watcher's materialised view. */
export function applyEvents<T>(
  view: Map<string, T>,
  events: readonly WatchEvent<T>[],
): Map<string, T> {
  for (const event of events) {
    switch (event.type) {
      case 'snapshot':
        view.clear()
        for (const record of event.records) view.set(record.id, record.data)
        break
      case 'asserted':
        view.set(event.record.id, event.record.data)
        break
      case 'retracted':
        view.delete(event.record.id)
        break
      case 'message':
      case 'reset':
        break
      default:
        event satisfies never
    }
  }
  return view
}

/** Events of `watch` (after its snapshot) until one at `revision` or later. */
export async function eventsUntil(watch: Watch, revision: number): Promise<WatchEvent[]> {
  const events: WatchEvent[] = []
  for (;;) {
    const { value, done } = await watch.next()
    assert.ok(!done, 'watch ended')
    if (value.type === 'snapshot') continue
    events.push(value)
    if ('revision' in value && typeof value.revision === 'number' && value.revision >= revision) {
      return events
    }
  }
}
