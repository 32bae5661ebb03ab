import type { Logger } from 'pino'

// A reason is logged at most once per this many ms: a flood of refusals must not flood the log.
const LOG_EVERY_MS = 1000
// Reasons remembered at most; past it the oldest is forgotten (its next line is not throttled).
const MAX_REASONS = 1024

/**
 * Warnings a client can cause (limit hits, failed auth, forbidden calls), written at most once a
 * second per reason; the line says how many were `suppressed` since the last one of its reason.
 */
export class LogThrottle {
  readonly #logger: Logger
  readonly #last = new Map<string, { at: number; suppressed: number }>()

  constructor(logger: Logger) {
    this.#logger = logger
  }

  /** Logs `message` with `fields` at `warn`, unless `reason` was logged in the last second. */
  warn(reason: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    const last = this.#last.get(reason)
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.suppressed++
      return
    }
    this.#last.delete(reason)
    if (this.#last.size >= MAX_REASONS) {
      const oldest = this.#last.keys().next().value
      if (oldest !== undefined) this.#last.delete(oldest)
    }
    this.#last.set(reason, { at: now, suppressed: 0 })
    this.#logger.warn({ ...fields, suppressed: last?.suppressed ?? 0 }, message)
  }
}
