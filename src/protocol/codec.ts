import type { ClientMessage, ServerMessage } from './frames.js'

/**
 * Turns messages into frames and back. A frame holds one message or an array of them; decoding
 * always answers an array. Only JSON exists today; `hello.codec` negotiates it.
 */
export const jsonCodec = Object.freeze({
  encode(messages: readonly (ClientMessage | ServerMessage)[]): string {
    return JSON.stringify(messages.length === 1 ? messages[0] : messages)
  },
  /** The messages of a frame, not yet validated; throws `SyntaxError` on bad JSON. */
  decode(frame: string): unknown[] {
    const parsed: unknown = JSON.parse(frame)
    return Array.isArray(parsed) ? parsed : [parsed]
  },
})

/** The text of a received frame (`ws` hands text frames over as a Buffer, or fragments). */
export function textOf(data: unknown): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]).toString('utf8')
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8')
  return String(data)
}
