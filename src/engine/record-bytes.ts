import type { DataspaceRecord, Message, WatchEvent } from '../model/types.js'

/*
 * Cheap estimates of what values, records and events cost on the V8 heap, for the byte caps of
 * the history and the queues and for the memory budget. They are estimates, not measurements:
 * close enough (within about 2× of `heapUsed`, see bench/soak.ts) to bound memory, and cheap
 * because each frozen object is measured once — records and their data are frozen and shared
 * by every reader, so an overwrite that reuses a subtree, or an event that carries a record,
 * costs a WeakMap lookup.
 */

/** Fixed cost of a record: the object, its fields, and its entries in the kind's indexes. */
const RECORD_OVERHEAD = 160
/** Fixed cost of a queued event or message object. */
const EVENT_OVERHEAD = 64
/** A string's header (map, hash, length); its characters come on top. */
const STRING_HEADER = 24
const OBJECT_HEADER = 32
/** Per property: the slot, and its share of the hidden class's descriptor (keys are interned). */
const PROPERTY = 16
const SLOT = 8
/** Values nested deeper are counted as a slot: data is depth-checked at 64 already. */
const MAX_DEPTH = 100

const measured = new WeakMap<object, number>()
// Latin-1 strings take one byte per character in V8, others two.
// eslint-disable-next-line no-control-regex -- the range starts at U+0000 on purpose
const ONE_BYTE = /^[\u0000-\u00ff]*$/

/** Estimated bytes of a string. */
export function stringBytes(value: string): number {
  const length = value.length
  return STRING_HEADER + (length <= 64 || oneByte(value) ? length : length * 2)
}

/** Whether V8 likely stores `value` one byte per character; long strings are judged by their ends. */
function oneByte(value: string): boolean {
  if (value.length <= 8192) return ONE_BYTE.test(value)
  // Scanning a 1 MB string costs milliseconds per write; its ends tell nearly always.
  return ONE_BYTE.test(value.slice(0, 4096)) && ONE_BYTE.test(value.slice(-4096))
}

/**
 * Estimated bytes of a JSON-like value. Frozen objects (validated data) are measured once and
 * remembered; a subtree seen twice in one value is counted once, so shared or cyclic structure
 * (possible in an in-process message) costs a walk of its distinct objects, never more.
 */
export function valueBytes(value: unknown): number {
  return measure(value, 0, new Set())
}

function measure(value: unknown, depth: number, seen: Set<object>): number {
  switch (typeof value) {
    case 'string':
      return SLOT + stringBytes(value)
    case 'number':
      return Number.isInteger(value) && Math.abs(value) < 2 ** 30 ? SLOT : SLOT + 16
    case 'object':
      break
    case 'boolean':
    case 'undefined':
    case 'bigint':
    case 'symbol':
    case 'function':
      return SLOT
  }
  if (value === null || depth >= MAX_DEPTH) return SLOT
  const known = measured.get(value)
  if (known !== undefined) return SLOT + known
  if (seen.has(value)) return SLOT
  seen.add(value)
  let bytes = OBJECT_HEADER
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) bytes += measure(item, depth + 1, seen)
  } else {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue
      bytes += PROPERTY + measure((value as Record<string, unknown>)[key], depth + 1, seen)
    }
  }
  // Only frozen objects cannot change after being measured.
  if (Object.isFrozen(value)) measured.set(value, bytes)
  return SLOT + bytes
}

/** Estimated bytes of a record: its data, labels and id, plus its place in the indexes. */
export function recordBytes(record: DataspaceRecord): number {
  const known = measured.get(record)
  if (known !== undefined) return known
  const bytes =
    RECORD_OVERHEAD +
    stringBytes(record.id) +
    valueBytes(record.data) +
    (Object.keys(record.labels).length === 0 ? 0 : valueBytes(record.labels))
  if (Object.isFrozen(record)) measured.set(record, bytes)
  return bytes
}

/**
 * Estimated bytes a queued watch event holds on to: the records it carries (which a slow
 * watcher can keep alive after the store and the history have let them go), or its message.
 * A snapshot's records are the store's current ones, so it is counted by reference.
 */
export function eventBytes(event: WatchEvent): number {
  switch (event.type) {
    case 'asserted':
      return (
        EVENT_OVERHEAD +
        recordBytes(event.record) +
        (event.previous === undefined ? 0 : recordBytes(event.previous))
      )
    case 'retracted':
      return EVENT_OVERHEAD + recordBytes(event.record)
    case 'message':
      return EVENT_OVERHEAD + valueBytes(event.message)
    case 'snapshot':
      return EVENT_OVERHEAD + SLOT * event.records.length
    case 'reset':
      return EVENT_OVERHEAD
  }
}

/** Estimated bytes of a mailbox message. */
export function messageBytes(message: Message): number {
  return EVENT_OVERHEAD + valueBytes(message.message)
}
