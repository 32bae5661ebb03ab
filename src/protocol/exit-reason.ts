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
