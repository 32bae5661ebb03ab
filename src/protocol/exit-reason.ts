import { InvalidArgument } from '../errors/index.js'
import { freezeJson } from '../model/validate.js'
import type { ExitReason, Json } from '../model/types.js'

/** An exit reason as JSON: an `{ error }` carries the error's name and message, not the object. */
export function exitReasonToWire(reason: ExitReason): Json {
  if (typeof reason === 'string') return reason
  const error = reason.error
  if (error instanceof Error) return { error: { name: error.name, message: error.message } }
  try {
    return { error: JSON.parse(JSON.stringify(error ?? null)) as Json }
  } catch {
    return { error: String(error) }
  }
}

/**
 * An exit reason a client sent: `normal` when absent, a string, or `{ error }`. It reaches
 * monitors and logs, so the one value rule holds for it too.
 */
export function exitReasonFromWire(reason: unknown): ExitReason {
  if (reason === undefined) return 'normal'
  if (typeof reason === 'string') return freezeJson(reason, 'reason')
  if (typeof reason === 'object' && reason !== null && 'error' in reason) {
    return freezeJson(reason, 'reason')
  }
  throw new InvalidArgument('"reason" must be a string or { error }')
}
