import { Conflict, InvalidArgument } from '../errors/index.js'
import type { CompiledSelector } from './compiled-selector.js'
import type { History } from './history.js'
import type { KindStore } from './kind-store.js'
import { byId, plan, select } from './query-planner.js'
import type { DataspaceRecord, ListResult } from '../model/types.js'

/** What a continue token carries: the query it belongs to, the revision, and the last id served. */
interface Token {
  readonly v: 1
  readonly k: string
  readonly q: string
  readonly r: number
  readonly a: string
}

/**
 * One page of a list. The first page is read at the current revision; later pages are read at
 * the SAME revision, rebuilt from the current state plus the history of what changed since
 * (the state at R = now, with every id touched after R put back as it was). When the history
 * no longer reaches back to R the token has expired: `Conflict`, as Kubernetes answers 410.
 */
export function listPage(
  store: KindStore | undefined,
  history: History,
  currentRevision: number,
  kind: string,
  selector: CompiledSelector,
  limit: number | undefined,
  continueToken: string | undefined,
): ListResult {
  let revision = currentRevision
  let after: string | undefined
  if (continueToken !== undefined) {
    const token = readContinue(continueToken, kind, selector)
    if (token.r > currentRevision)
      throw new InvalidArgument('continue token is from a revision this dataspace has not reached')
    if (!history.covers(token.r)) {
      throw new Conflict(
        `continue token expired: revision ${token.r} is no longer in history; start the list again`,
        token.r,
      )
    }
    revision = token.r
    after = token.a
  }
  const max = limit === undefined ? undefined : limit + 1
  let items: DataspaceRecord[]
  if (store === undefined) items = []
  else if (revision === currentRevision)
    items = select(store, selector, plan(store, selector), { after, max })
  else items = selectAt(store, history, revision, selector, after, max)
  if (limit === undefined || items.length <= limit) return { items, revision }
  items.length = limit
  const last = items[limit - 1] as DataspaceRecord
  return { items, revision, continue: continueAfter(kind, selector, revision, last.id) }
}

/**
 * One page of a non-resident kind's list, from the matches a backed read returned (`limit + 1`
 * of them when there is a next page). Its pages are read at the current state, by id after the
 * last one served (keyset pagination): the backend cannot rebuild an older revision.
 */
export function backedPage(
  records: readonly DataspaceRecord[],
  revision: number,
  kind: string,
  selector: CompiledSelector,
  limit: number | undefined,
): ListResult {
  if (limit === undefined || records.length <= limit) return { items: [...records], revision }
  const items = records.slice(0, limit)
  const last = items[limit - 1] as DataspaceRecord
  return { items, revision, continue: continueAfter(kind, selector, revision, last.id) }
}

/** The token for the page after `lastId`. */
function continueAfter(
  kind: string,
  selector: CompiledSelector,
  revision: number,
  lastId: string,
): string {
  return encode({ v: 1, k: kind, q: selector.key, r: revision, a: lastId })
}

/** Decodes a continue token and checks that it belongs to this query. */
export function readContinue(
  text: string,
  kind: string,
  selector: CompiledSelector,
): { readonly r: number; readonly a: string } {
  const token = decode(text)
  if (token.k !== kind || token.q !== selector.key) {
    throw new InvalidArgument(
      'continue token belongs to a different list query (kind or selector changed)',
    )
  }
  return token
}

function selectAt(
  store: KindStore,
  history: History,
  revision: number,
  selector: CompiledSelector,
  after: string | undefined,
  max: number | undefined,
): DataspaceRecord[] {
  const old = history.stateAt(store.kind, revision)
  const unchanged = select(store, selector, plan(store, selector), { after, max, skip: old })
  const restored: DataspaceRecord[] = []
  for (const [id, record] of old) {
    if (record !== undefined && (after === undefined || id > after) && selector.matches(record))
      restored.push(record)
  }
  if (restored.length === 0) return unchanged
  const merged = unchanged.concat(restored).sort(byId)
  if (max !== undefined && merged.length > max) merged.length = max
  return merged
}

function encode(token: Token): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url')
}

function decode(text: string): Token {
  let token: unknown
  try {
    token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch (cause) {
    throw new InvalidArgument('continue token is malformed', { cause })
  }
  const t = token as Partial<Token> | null
  if (
    t === null ||
    typeof t !== 'object' ||
    t.v !== 1 ||
    typeof t.k !== 'string' ||
    typeof t.q !== 'string' ||
    typeof t.r !== 'number' ||
    typeof t.a !== 'string'
  ) {
    throw new InvalidArgument('continue token is malformed')
  }
  return t as Token
}
