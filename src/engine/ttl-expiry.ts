import { ExpiryQueue } from './expiry-queue.js'
import type { Transaction, TransactionContext } from './transaction.js'

/** What expiry needs of the engine: its state, and the commit path's system entry. */
export interface ExpiryHost {
  readonly context: TransactionContext
  readonly closed: boolean
  /** True while watchers are being told of a commit: no commit may start then. */
  readonly dispatching: boolean
  /** Set on a follower, which writes nothing: the writer's expiries reach it as commits. */
  readonly writesRefused: string | undefined
  /**
   * Applies a system commit `build` stages (commit.ts `system`): at once, or on a cluster node
   * at its next write turn, against the state then.
   */
  system(build: (tx: Transaction) => void): void
}

/** The longest delay `setTimeout` takes (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Record TTLs: the deadlines of resident records, one timer for the earliest, and the commit
 * that retracts (reason `expired`) every record whose deadline has passed. Due records are also
 * retracted at the start of every public operation, so a read never sees an expired record.
 */
export class TtlExpiry {
  readonly #host: ExpiryHost
  readonly #queue = new ExpiryQueue()
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity
  /** An expiry waits for a cluster node's write turn: one is enough for every due record. */
  #requested = false

  constructor(host: ExpiryHost) {
    this.#host = host
  }

  /** Notes that `kind/id` expires at `at` (a later write may move or drop the deadline). */
  schedule(at: number, kind: string, id: string): void {
    this.#queue.push({ at, kind, id })
  }

  /** Arms the timer for `at` when that is earlier than the one armed. */
  wakeBy(at: number): void {
    if (at < this.#timerAt) this.#arm(at)
  }

  /** Arms the timer for the earliest deadline (after start-up loaded records with TTLs). */
  armNext(): void {
    const next = this.#queue.peek()
    if (next !== undefined) this.#arm(next.at)
  }

  /**
   * Commits the retraction of every record whose TTL has run out, in one commit: at once, or
   * on a cluster node at its next write turn (whichever node's turn comes first retracts them;
   * the others find them gone).
   */
  expireDue(): void {
    const head = this.#queue.peek()
    const host = this.#host
    if (head === undefined || head.at > host.context.now() || host.dispatching) return
    if (host.writesRefused !== undefined || this.#requested) return
    this.#requested = true
    host.system((tx) => {
      this.#requested = false
      for (const due of this.#queue.popDue(host.context.now())) {
        const record = tx.read(due.kind, due.id)
        // Lazy deletion: the entry counts only if the record still carries this deadline.
        if (record?.expiresAt === due.at) tx.remove(record, 'expired')
      }
      // Deferred to a cluster node's turn, the timer waited for this (or was armed meanwhile
      // for a later deadline a replicated record brought): armed for the earliest one now.
      this.armNext()
    })
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        this.#timerAt = Infinity
        if (this.#host.closed) return
        this.expireDue()
        // Not while an expiry waits for a cluster node's turn: the due entries are still queued,
        // and a timer for them would fire again at once, and again, until the turn comes.
        if (!this.#requested) this.armNext()
      },
      // Node fires a longer delay after 1 ms (with a TimeoutOverflowWarning), which made the
      // loop spin for TTLs over ~24.8 days: wake at the clamp instead, and re-arm from there.
      Math.min(Math.max(0, at - this.#host.context.now()), MAX_TIMER_MS),
    )
    // Expiry alone must not keep a program alive.
    this.#timer.unref()
  }
}
