import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidArgument, TooLarge } from '../errors/index.js'
import type { WireError } from '../protocol/index.js'

/**
 * Reads a JSON request body, refusing more than `limit` bytes while it streams in: a declared
 * `Content-Length` over the limit is refused before reading anything, and a chunked body is cut
 * off at the first chunk past it, so a large upload never sits in memory. An empty body is
 * `undefined`.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit)
  // Events rather than `for await`: leaving an async iterator early destroys the request, and
  // with it the socket the 413 must be written to.
  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= limit) {
        chunks.push(chunk)
        return
      }
      cleanup()
      // Stop reading; the caller answers 413 with `connection: close`, dropping the rest.
      req.pause()
      reject(tooLarge(limit))
    }
    const onEnd = (): void => {
      cleanup()
      resolve()
    }
    const onError = (error: Error): void => {
      cleanup()
      reject(error)
    }
    const cleanup = (): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError)
    }
    req.on('data', onData).on('end', onEnd).on('error', onError)
  })
  if (size === 0) return undefined
  const text = Buffer.concat(chunks, size).toString('utf8')
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new InvalidArgument(
      `request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
    )
  }
}

/** Reads a body that must be a JSON object (or empty, which reads as `{}`). */
export async function readJsonObject(
  req: IncomingMessage,
  limit: number,
): Promise<Record<string, unknown>> {
  const body = await readJsonBody(req, limit)
  if (body === undefined) return {}
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidArgument('request body must be a JSON object')
  }
  return body as Record<string, unknown>
}

function tooLarge(limit: number): TooLarge {
  return new TooLarge(
    `request body is over limits.maxBodyBytes (${limit} bytes); send less, or raise the ` +
      `limit: createServer({ limits: { maxBodyBytes } }) or dataspace serve --limits maxBodyBytes=N`,
    { limit: 'maxBodyBytes' },
  )
}

/** Writes a JSON response (or an empty one for 204). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (status === 204 || body === undefined) {
    res.writeHead(status, headers).end()
    return
  }
  const text = JSON.stringify(body)
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    })
    .end(text)
}

/** Writes an error response; `close` asks the client to drop the connection (unread upload). */
export function sendError(
  res: ServerResponse,
  status: number,
  body: WireError,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  sendJson(res, status, body, headers)
}
