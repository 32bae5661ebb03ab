// What the replica tests on PostgreSQL (followers, cluster nodes) compare: a watcher's view of a
// kind (its snapshot with its events applied), records and events as comparable rows, and a
// seeded PRNG so that a failing randomized run can be replayed from its seed.
import assert from 'node:assert/strict'
import type { DataspaceRecord, Watch, WatchEvent } from '../../src/index.js'

/** Every event of `watch` after its snapshot, up to `revision`, and the snapshot's records. */
export async function read(
  watch: Watch,
  revision: number,
): Promise<{ snapshot: readonly DataspaceRecord[]; events: WatchEvent[] }> {
  let snapshot: readonly DataspaceRecord[] = []
  const events: WatchEvent[] = []
  let at = -1
  while (at < revision) {
    const { value, done } = await watch.next()
    assert.ok(!done, 'watch ended')
    if (value.type === 'snapshot') {
      snapshot = value.records
      at = value.revision
    } else if (value.type === 'asserted' || value.type === 'retracted') {
      events.push(value)
      at = value.revision
    } else {
      assert.fail(`unexpected ${value.type}`)
    }
  }
  return { snapshot, events }
}

export function view(snapshot: readonly DataspaceRecord[], events: WatchEvent[]): string[] {
  const records = new Map(snapshot.map((record) => [record.id, record]))
  for (const event of events) {
    if (event.type === 'asserted') records.set(event.record.id, event.record)
    else if (event.type === 'retracted') records.delete(event.record.id)
  }
  return rows([...records.values()])
}

export function rows(records: readonly DataspaceRecord[]): string[] {
  return records.map((r) => `${r.id}=${canonical(r.data)}@${r.revision}`).sort()
}

/**
 * JSON with sorted keys: a record a node wrote keeps its keys in the order given, one read
 * back from PostgreSQL's `jsonb` in jsonb's order (as after a restart); the values are equal.
 */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : 1)))
      : inner,
  )
}

export function eventRow(event: WatchEvent): string {
  if (event.type === 'asserted') return `+${event.record.id}@${event.revision}`
  if (event.type === 'retracted') return `-${event.record.id}:${event.reason}@${event.revision}`
  return event.type
}

/** A small seeded PRNG (mulberry32), so that a failing run can be replayed from its seed. */
export function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
