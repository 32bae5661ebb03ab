import type { TransactRequest } from '../model/index.js'
import { InvalidArgument } from '../errors/index.js'
import { GROUP_MEMBER_KIND } from '../model/index.js'
import { NAME_KIND } from '../model/index.js'
import type { Right } from './auth.js'

/**
 * The rights a transaction needs, one `[kind, right]` per op and condition: `write` for each op
 * (and `read` too for claims, which answer the record), `read` for each condition. Both
 * transports check exactly these; a malformed request is `InvalidArgument` here, before any
 * right is looked at.
 */
export function transactionRights(request: TransactRequest): [kind: string, right: Right][] {
  if (!Array.isArray(request.then)) throw new InvalidArgument('transact needs "then": an array')
  if (request.if !== undefined && !Array.isArray(request.if)) {
    throw new InvalidArgument('"if" must be an array of conditions')
  }
  const rights: [string, Right][] = []
  for (const op of request.then) {
    const kind = kindOf(op)
    rights.push([kind, 'write'])
    if ((op as { op?: unknown }).op === 'claim') rights.push([kind, 'read'])
  }
  for (const condition of request.if ?? []) rights.push([kindOf(condition), 'read'])
  return rights
}

function kindOf(item: unknown): string {
  const kind = (item as { kind?: unknown } | null)?.kind
  if (typeof kind !== 'string') throw new InvalidArgument('every op and condition needs a "kind"')
  return kind
}

/**
 * The kind a send is authorized against: a record's kind, `$group.member` for a group,
 * `$name` for a name, `$process` for a bare pid.
 */
export function targetKind(target: unknown): string {
  if (typeof target === 'string') return '$process'
  if (typeof target === 'object' && target !== null) {
    if ('kind' in target && typeof target.kind === 'string') return target.kind
    if ('group' in target) return GROUP_MEMBER_KIND
    if ('name' in target) return NAME_KIND
  }
  throw new InvalidArgument('"target" must be a pid, { kind, id }, { group } or { name }')
}
