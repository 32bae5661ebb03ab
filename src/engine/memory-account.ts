import { getHeapStatistics } from 'node:v8'
import { InvalidArgument, TooLarge } from '../errors/index.js'
import { checkPositive } from '../model/validate.js'

import type { ByteMeter } from '../streams/queued-stream.js'

export type { ByteMeter }

/**
 * The share of V8's heap limit the engine may fill by default. The rest is for what the engine
 * does not count (the server's sockets and buffers, requests being parsed, garbage not yet
 * collected, the error of the estimates): half keeps a full engine well clear of a crash.
 */
export const DEFAULT_BUDGET_SHARE = 0.5

/** The default memory budget: half of this process's V8 heap limit (`--max-old-space-size`). */
export function defaultMemoryBudget(): number {
  return Math.floor(getHeapStatistics().heap_size_limit * DEFAULT_BUDGET_SHARE)
}

const MiB = 1024 * 1024
/**
 * What one open watch and one process cost beyond their records, queues and `$watch` record,
 * measured by bench/soak.ts over the server (about 3.5 KB of heap per idle watch and 16 KB
 * per WebSocket session, most of it the server's share): counted so that a budget full of
 * sessions and watches refuses writes before the heap runs out.
 */
export const WATCH_BYTES = 3 * 1024
export const PROCESS_BYTES = 8 * 1024

/** The names of the byte bounds: `dataspace serve --limits` takes them too. */
export const BYTE_BOUND_NAMES = [
  'memoryBudgetBytes',
  'historyBytes',
  'watchBufferBytes',
  'mailboxBytes',
] as const satisfies readonly (keyof ByteBounds)[]

/** Byte bounds of one dataspace, resolved from its options. */
export interface ByteBounds {
  readonly memoryBudgetBytes: number
  readonly historyBytes: number
  readonly watchBufferBytes: number
  readonly mailboxBytes: number
}

/**
 * Fills the byte bounds' defaults. Each cap is a share of the budget so that a small budget
 * scales them down with it: the history ⅛ (at most 256 MiB), a watch queue and a mailbox each
 * 1/64 (at most 64 MiB and 16 MiB).
 */
export function resolveByteBounds(options: Partial<ByteBounds>): ByteBounds {
  const budget = positive('memoryBudgetBytes', options.memoryBudgetBytes ?? defaultMemoryBudget())
  const historyBytes = positive(
    'historyBytes',
    options.historyBytes ?? Math.min(256 * MiB, Math.floor(budget / 8)),
  )
  if (historyBytes > budget / 2) {
    throw new InvalidArgument(
      `historyBytes (${historyBytes}) must be at most half of memoryBudgetBytes (${budget}): the history's cap is reserved out of the budget`,
    )
  }
  return Object.freeze({
    memoryBudgetBytes: budget,
    historyBytes,
    watchBufferBytes: positive(
      'watchBufferBytes',
      options.watchBufferBytes ?? Math.min(64 * MiB, Math.max(64 * 1024, Math.floor(budget / 64))),
    ),
    mailboxBytes: positive(
      'mailboxBytes',
      options.mailboxBytes ?? Math.min(16 * MiB, Math.max(64 * 1024, Math.floor(budget / 64))),
    ),
  })
}

/**
 * What the engine holds, in estimated bytes (see record-bytes.ts), against its memory budget:
 * the resident records, the history, and every watch queue and mailbox. A write that would
 * grow the records past the budget is refused; the history's whole cap is reserved out of the
 * budget, so overwrites (which grow the history, not the records) never push it over.
 */
export class MemoryAccount {
  readonly budget: number
  readonly #historyCap: number
  records = 0
  history = 0
  readonly watchQueues: ByteMeter = { bytes: 0 }
  readonly mailboxes: ByteMeter = { bytes: 0 }
  /** Open watches and live processes, counted at fixed costs. */
  watches = 0
  processes = 0
  /** Writes refused because of the budget. */
  refused = 0

  constructor(bounds: ByteBounds) {
    this.budget = bounds.memoryBudgetBytes
    this.#historyCap = bounds.historyBytes
  }

  /** Everything counted now. */
  get used(): number {
    return this.records + this.history + this.watchQueues.bytes + this.mailboxes.bytes + this.#fixed
  }

  /** What open watches and live processes cost at their fixed rates. */
  get #fixed(): number {
    return this.watches * WATCH_BYTES + this.processes * PROCESS_BYTES
  }

  /** Whether a commit growing the records by `growth` bytes fits; shrinking always does. */
  fits(growth: number): boolean {
    return growth <= 0 || this.overBy(growth) <= 0
  }

  /** By how many bytes a commit growing the records by `growth` would pass the budget. */
  overBy(growth: number): number {
    const reserved = Math.max(this.history, this.#historyCap)
    return (
      this.records +
      growth +
      reserved +
      this.watchQueues.bytes +
      this.mailboxes.bytes +
      this.#fixed -
      this.budget
    )
  }

  /** Throws the budget's `TooLarge` for a commit of `growth` bytes (counted). */
  refuse(growth: number): never {
    this.refused++
    throw new TooLarge(
      `the dataspace's memory budget is full: records ${mib(this.records)} + history reserve ` +
        `${mib(Math.max(this.history, this.#historyCap))} + queues ` +
        `${mib(this.watchQueues.bytes + this.mailboxes.bytes)} + ${this.watches} watches and ` +
        `${this.processes} processes ${mib(this.#fixed)} + this write ${mib(growth)} ` +
        `would pass memoryBudgetBytes (${mib(this.budget)}). Retract or delete records, or raise ` +
        `memoryBudgetBytes (createDataspace option; dataspace serve --limits memoryBudgetBytes=N)`,
      { limit: 'memoryBudgetBytes' },
    )
  }
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 2 : 0)} MiB`
}

/** A byte bound given as an option. */
function positive(name: string, value: number): number {
  return checkPositive(name, value, ' of bytes')
}
