import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Forbidden, InvalidArgument, Unauthorized } from '../errors/index.js'
import { compileGlob } from '../query/index.js'
import type { CompiledGlob } from '../query/index.js'

/** What a token may do on the kinds a grant covers; `admin` implies `read` and `write`. */
export type Right = 'read' | 'write' | 'admin'

/** Rights on every kind matching the glob `kinds` (`*`, `api.*`, `$kv.config`, …). */
export interface Grant {
  readonly kinds: string
  readonly rights: readonly Right[]
}

/** One bearer token and what it may do. */
export interface TokenSpec {
  readonly token: string
  /** Shown in `Forbidden` messages and logs instead of the secret (default `token #<index>`). */
  readonly name?: string
  readonly rights: readonly Grant[]
}

/** The `auth` option of `createServer`, and the shape of a token file. */
export interface AuthOptions {
  readonly tokens: readonly TokenSpec[]
}

/** An authenticated caller. Sessions remember the principal that opened them. */
export interface Principal {
  readonly name: string
  /** True when the token holds `right` on `kind` (admin implies read and write). */
  can(kind: string, right: Right): boolean
}

const RIGHTS: readonly Right[] = ['read', 'write', 'admin']

interface Entry {
  readonly digest: Buffer
  readonly principal: Principal
}

/** The configured tokens, kept only as sha256 digests. */
export class TokenTable {
  readonly #entries: readonly Entry[]

  constructor(options: AuthOptions) {
    const config = validateAuth(options, 'auth')
    this.#entries = config.tokens.map((spec, i) => ({
      digest: sha256(spec.token),
      principal: principal(spec.name ?? `token #${i}`, spec.rights),
    }))
  }

  /** The principal of the token named `name` (sessions restored after a restart name theirs). */
  byName(name: string): Principal | undefined {
    return this.#entries.find((entry) => entry.principal.name === name)?.principal
  }

  /**
   * The principal of an `Authorization: Bearer <token>` header, or `Unauthorized`. Every token is
   * compared, digest against digest, so neither the length of the given token nor which
   * configured token it resembles shows in the time taken.
   */
  authenticate(header: string | undefined): Principal {
    if (header === undefined || header === '') {
      throw new Unauthorized('missing token: send the header "Authorization: Bearer <token>"')
    }
    const match = /^Bearer +(\S+) *$/i.exec(header)
    if (match === null) {
      throw new Unauthorized('malformed Authorization header: expected "Bearer <token>"')
    }
    const given = sha256(match[1] ?? '')
    let found: Principal | undefined
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, given)) found ??= entry.principal
    }
    if (found === undefined) throw new Unauthorized('invalid token')
    return found
  }
}

/** `Forbidden` unless `who` holds `right` on `kind`. */
export function authorize(who: Principal, kind: string, right: Right): void {
  if (!who.can(kind, right)) {
    throw new Forbidden(`${who.name} has no ${right} right on kind ${JSON.stringify(kind)}`)
  }
}

/**
 * Reads and validates a token file: JSON `{ "tokens": [{ "token", "name"?, "rights": [{ "kinds",
 * "rights" }] }] }`. Every problem is an `InvalidArgument` naming the file and the field.
 *
 * @example
 * const server = await createServer({ ds, auth: await loadTokenFile('tokens.json') })
 */
export async function loadTokenFile(path: string): Promise<AuthOptions> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new InvalidArgument(`cannot read token file ${path}: ${(error as Error).message}`, {
      cause: error,
    })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new InvalidArgument(`token file ${path} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    })
  }
  return validateAuth(parsed, `token file ${path}`)
}

/** Checks an auth configuration field by field; `where` prefixes every error message. */
export function validateAuth(value: unknown, where: string): AuthOptions {
  const fail = (path: string, problem: string): never => {
    throw new InvalidArgument(`${where}: ${path} ${problem}`)
  }
  const root = object(value, 'the top level', fail)
  only(root, ['tokens'], 'the top level', fail)
  if (!Array.isArray(root.tokens) || root.tokens.length === 0) {
    return fail('"tokens"', 'must be a non-empty array')
  }
  const seen = new Set<string>()
  const tokens = root.tokens.map((raw: unknown, i): TokenSpec => {
    const at = `tokens[${i}]`
    const spec = object(raw, at, fail)
    only(spec, ['token', 'name', 'rights'], at, fail)
    if (typeof spec.token !== 'string' || spec.token.length < 16 || /\s/.test(spec.token)) {
      fail(`${at}.token`, 'must be a string of at least 16 characters without spaces')
    }
    const token = spec.token as string
    if (seen.has(token)) fail(`${at}.token`, 'repeats an earlier token')
    seen.add(token)
    if (spec.name !== undefined && (typeof spec.name !== 'string' || spec.name === '')) {
      fail(`${at}.name`, 'must be a non-empty string')
    }
    if (!Array.isArray(spec.rights)) return fail(`${at}.rights`, 'must be an array of grants')
    const rights = spec.rights.map((rawGrant: unknown, j): Grant => {
      const gat = `${at}.rights[${j}]`
      const grant = object(rawGrant, gat, fail)
      only(grant, ['kinds', 'rights'], gat, fail)
      if (typeof grant.kinds !== 'string' || grant.kinds === '') {
        fail(`${gat}.kinds`, 'must be a non-empty kind glob such as "*" or "api.*"')
      }
      try {
        compileGlob(grant.kinds as string)
      } catch (error) {
        fail(`${gat}.kinds`, `is not a valid glob: ${(error as Error).message}`)
      }
      const list = grant.rights
      if (
        !Array.isArray(list) ||
        list.length === 0 ||
        !list.every((r) => RIGHTS.includes(r as Right))
      ) {
        fail(
          `${gat}.rights`,
          `must be a non-empty array of ${RIGHTS.map((r) => `"${r}"`).join(', ')}`,
        )
      }
      return { kinds: grant.kinds as string, rights: list as Right[] }
    })
    const name = spec.name as string | undefined
    return name === undefined ? { token, rights } : { token, name, rights }
  })
  return { tokens }
}

function principal(name: string, grants: readonly Grant[]): Principal {
  const compiled: { readonly glob: CompiledGlob; readonly rights: ReadonlySet<Right> }[] =
    grants.map((g) => ({ glob: compileGlob(g.kinds), rights: new Set(g.rights) }))
  return Object.freeze({
    name,
    can(kind: string, right: Right): boolean {
      return compiled.some(
        (g) => g.glob.test(kind) && (g.rights.has(right) || g.rights.has('admin')),
      )
    },
  })
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

function object(
  value: unknown,
  at: string,
  fail: (path: string, problem: string) => never,
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(at, 'must be an object')
  }
  return value as Record<string, unknown>
}

function only(
  value: Record<string, unknown>,
  allowed: readonly string[],
  at: string,
  fail: (path: string, problem: string) => never,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      fail(at, `has unknown field "${key}" (allowed: ${allowed.join(', ')})`)
    }
  }
}
