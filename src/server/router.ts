import { InvalidArgument } from '../errors/index.js'

/** The HTTP methods the API uses. */
export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE'

interface Route<H> {
  readonly method: Method
  readonly segments: readonly string[]
  readonly handler: H
}

/** What a lookup found: a handler with its path parameters, a wrong method, or nothing. */
export type Match<H> =
  | { readonly type: 'found'; readonly handler: H; readonly params: Record<string, string> }
  | { readonly type: 'method-not-allowed'; readonly allow: readonly Method[] }
  | { readonly type: 'not-found' }

/**
 * A small path router. Patterns are `/`-separated segments: literals, `:name` (one segment) and a
 * final `*name` (the rest of the path, so record ids and KV keys may contain `/` unescaped).
 * Literal segments win over parameters wherever both match, so routes may be added in any order.
 * Parameters are percent-decoded per segment, so `%2F` inside a `:name` segment is a `/`.
 */
export class Router<H> {
  readonly #routes: Route<H>[] = []

  add(method: Method, pattern: string, handler: H): this {
    const segments = pattern.split('/').filter((s) => s.length > 0)
    const rest = segments.findIndex((s) => s.startsWith('*'))
    if (rest !== -1 && rest !== segments.length - 1) {
      throw new Error(`router: ${pattern}: a * parameter must be the last segment`)
    }
    this.#routes.push({ method, segments, handler })
    return this
  }

  match(method: string, path: string): Match<H> {
    const parts = path.split('/').filter((s) => s.length > 0)
    let best: { route: Route<H>; params: Record<string, string>; score: string } | undefined
    const allow = new Set<Method>()
    for (const route of this.#routes) {
      const matched = matchSegments(route.segments, parts)
      if (matched === undefined) continue
      if (route.method !== method) {
        allow.add(route.method)
        continue
      }
      // Literal-ness segment by segment: 'a' (literal) beats 'b' (param) beats 'c' (rest), and
      // the smaller string is the more specific route.
      if (best === undefined || matched.score < best.score) {
        best = { route, params: matched.params, score: matched.score }
      }
    }
    if (best !== undefined)
      return { type: 'found', handler: best.route.handler, params: best.params }
    if (allow.size > 0) return { type: 'method-not-allowed', allow: [...allow].sort() }
    return { type: 'not-found' }
  }
}

function matchSegments(
  segments: readonly string[],
  parts: readonly string[],
): { params: Record<string, string>; score: string } | undefined {
  const params: Record<string, string> = {}
  let score = ''
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string
    if (segment.startsWith('*')) {
      if (i >= parts.length) return undefined
      params[segment.slice(1)] = parts.slice(i).map(decode).join('/')
      return { params, score: score + 'c' }
    }
    const part = parts[i]
    if (part === undefined) return undefined
    if (segment.startsWith(':')) {
      params[segment.slice(1)] = decode(part)
      score += 'b'
    } else if (segment === part) {
      score += 'a'
    } else {
      return undefined
    }
  }
  return parts.length === segments.length ? { params, score } : undefined
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new InvalidArgument(`path segment ${JSON.stringify(part)} is not valid percent-encoding`)
  }
}
