/** Reconnect delays: exponential from `initialMs`, capped at `maxMs`, with full jitter. */
export interface BackoffOptions {
  readonly initialMs?: number
  readonly maxMs?: number
}

/**
 * The delay before reconnect attempt `attempt` (0-based): a uniform draw from
 * `[0, min(max, initial · 2^attempt)]` ("full jitter", AWS Architecture Blog), so that clients
 * cut off together do not reconnect together.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 100
  const max = options.maxMs ?? 5_000
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30))
  return Math.random() * ceiling
}
