import { InvalidArgument } from '../errors/index.js'
import type { ExitReason, TransactRequest } from '../model/index.js'
import { describe, GROUP_MEMBER_KIND, NAME_KIND } from '../model/index.js'
import { exitReasonFromWire } from './exit-reason.js'

/**
 * THE operation table: every operation of the wire protocol, by the name a WebSocket `call`
 * gives, with what every transport must hold it to — the shape of its arguments, the rights it
 * needs, which arguments must be the caller's own pids, what it adds to a session's record
 * quota, and whether it opens a stream. The server derives its WebSocket dispatch, its HTTP
 * routes' checks and its quota check from it, and the client its call names and retry rules
 * (`docs/protocol.md`, "The operation table"). The handlers that call the dataspace live in
 * `src/server/handlers.ts`, keyed by these names.
 */

export type Right = 'read' | 'write' | 'admin'

/** One right an operation needs: `right` on the record kind `kind`. */
export type Need = readonly [kind: string, right: Right]

/**
 * How one argument is read off the wire. `json!` must be present; `{ options }` is an object of
 * which only the listed keys are kept (an engine option object never receives a key the client
 * made up: a fake `signal` would otherwise reach the engine).
 */
export type Field =
  | 'string'
  | 'string?'
  | 'id'
  | 'json'
  | 'json!'
  | 'pid'
  | 'pids'
  | 'request'
  | 'target'
  | 'reason'
  | { readonly options: readonly string[] }

export type Schema = Readonly<Record<string, Field>>

type ValueOf<F> = F extends 'string'
  ? string
  : F extends 'string?'
    ? string | undefined
    : F extends 'id'
      ? string | number
      : F extends 'pid'
        ? string
        : F extends 'pids'
          ? string | readonly string[]
          : F extends 'request'
            ? TransactRequest
            : F extends 'reason'
              ? ExitReason
              : F extends { readonly options: readonly string[] }
                ? // Values unchecked here: the engine checks each option as in process.
                  Readonly<Record<string, unknown>>
                : unknown

/** The checked arguments of an operation with schema `S`. */
export type ArgsOf<S extends Schema> = { readonly [K in keyof S]: ValueOf<S[K]> }

/**
 * What a call can add to the records its session owns (`maxRecordsPerSession`): `one`, one per
 * pid of `pids`, an `assert`'s (one unless it updates a record the session owns, none when
 * ownerless), a `transaction`'s owned asserts and claims, one when `options.owner` is set.
 * Operations without it only read or remove, so a session at its limit can always make room.
 */
export type Adds = 'one' | 'pids' | 'assert' | 'transaction' | 'owner'

export interface OperationSpec<S extends Schema = Schema> {
  readonly args: S
  /** The rights the call needs, from its checked arguments. */
  readonly rights: (args: ArgsOf<S>) => readonly Need[]
  /**
   * The arguments that must name pids of the caller's own session (its process and children):
   * a pid argument, a `pids` list, or `options.owner` when given. Every transport refuses any
   * other pid with `Forbidden`.
   */
  readonly own: readonly string[]
  readonly adds?: Adds
  /** Opens a stream: answered `null`, then `events`. */
  readonly stream: boolean
  /** Changes something: answered once across re-sends, never blindly retried by a client. */
  readonly write: boolean
}

const spec =
  <St extends boolean, W extends boolean>(kind: { stream: St; write: W }) =>
  <const S extends Schema>(s: {
    args: S
    rights: (args: ArgsOf<S>) => readonly Need[]
    own?: readonly (keyof S | `options.${string}`)[]
    adds?: Adds
  }): OperationSpec<S> & { readonly stream: St; readonly write: W } => ({
    args: s.args,
    rights: s.rights,
    own: (s.own ?? []) as readonly string[],
    ...(s.adds === undefined ? {} : { adds: s.adds }),
    ...kind,
  })
const read = spec({ stream: false, write: false })
const write = spec({ stream: false, write: true })
const stream = spec({ stream: true, write: false })

const SELECTOR = ['id', 'fields', 'labels', 'owner'] as const
const none = (): readonly Need[] => []
const on =
  (right: Right) =>
  (a: { readonly kind: string }): readonly Need[] => [[a.kind, right]]
const groups = (right: Right) => (): readonly Need[] => [[GROUP_MEMBER_KIND, right]]
const names = (right: Right) => (): readonly Need[] => [[NAME_KIND, right]]
const kv =
  (right: Right) =>
  (a: { readonly bucket: string }): readonly Need[] => [[`$kv.${a.bucket}`, right]]
const GROUP = { scope: 'string', group: 'string' } as const
const groupRead = read({ args: GROUP, rights: groups('read') })
const scopeRead = read({ args: { scope: 'string' }, rights: groups('read') })
const broadcast = write({
  args: { ...GROUP, from: 'pid', message: 'json' },
  rights: groups('write'),
  own: ['from'],
})

export const OPERATIONS = {
  // The dataspace
  defineKind: write({
    args: { kind: 'string', options: { options: ['fields', 'indexes', 'resident'] } },
    rights: on('admin'),
  }),
  get: read({ args: { kind: 'string', id: 'id' }, rights: on('read') }),
  list: read({
    args: { kind: 'string', options: { options: [...SELECTOR, 'limit', 'continue'] } },
    rights: on('read'),
  }),
  explain: read({ args: { kind: 'string', options: { options: SELECTOR } }, rights: on('read') }),
  watch: stream({
    args: {
      kind: 'string',
      options: { options: [...SELECTOR, 'fromRevision', 'snapshot', 'bufferSize'] },
    },
    rights: on('read'),
  }),
  // Processes of the session
  'process.open': write({ args: { pid: 'pid', name: 'string' }, rights: none, own: ['pid'] }),
  'process.exit': write({ args: { pid: 'pid', reason: 'reason' }, rights: none, own: ['pid'] }),
  assert: write({
    args: {
      pid: 'pid',
      kind: 'string',
      id: 'id',
      data: 'json!',
      options: { options: ['labels', 'ttl', 'ifRevision', 'owner'] },
    },
    rights: on('write'),
    own: ['pid'],
    adds: 'assert',
  }),
  retract: write({
    args: { pid: 'pid', kind: 'string', id: 'id', options: { options: ['ifRevision'] } },
    rights: on('write'),
    own: ['pid'],
  }),
  transact: write({
    args: { pid: 'pid', request: 'request' },
    rights: (a) => transactionRights(a.request),
    own: ['pid'],
    adds: 'transaction',
  }),
  claim: write({
    args: {
      pid: 'pid',
      kind: 'string',
      options: { options: ['id', 'fields', 'labels', 'orderBy', 'patch', 'owner'] },
    },
    // A claim answers the record it took, so it reads as well as writes.
    rights: (a) => [
      [a.kind, 'write'],
      [a.kind, 'read'],
    ],
    own: ['pid'],
    adds: 'one',
  }),
  send: write({
    args: { pid: 'pid', target: 'target', message: 'json!' },
    rights: (a) => [[targetKind(a.target), 'write']],
    own: ['pid'],
  }),
  monitor: read({ args: { pid: 'pid', target: 'string' }, rights: none, own: ['pid'] }),
  messages: stream({ args: { pid: 'pid' }, rights: none, own: ['pid'] }),
  // Process groups: rights on the record kind `$group.member`
  'groups.join': write({
    args: { ...GROUP, pids: 'pids', meta: 'json' },
    rights: groups('write'),
    own: ['pids'],
    adds: 'pids',
  }),
  'groups.leave': write({
    args: { ...GROUP, pids: 'pids' },
    rights: groups('write'),
    own: ['pids'],
  }),
  'groups.updateMeta': write({
    args: { ...GROUP, pid: 'pid', meta: 'json' },
    rights: groups('write'),
    own: ['pid'],
  }),
  'groups.members': groupRead,
  'groups.localMembers': groupRead,
  'groups.membersWithMeta': groupRead,
  'groups.whichGroups': scopeRead,
  'groups.whichLocalGroups': scopeRead,
  'groups.broadcast': broadcast,
  'groups.broadcastLocal': broadcast,
  'groups.monitor': stream({
    args: { scope: 'string', group: 'string?' },
    rights: groups('read'),
  }),
  // Names: rights on `$name`
  'names.register': write({
    args: { pid: 'pid', name: 'string', meta: 'json' },
    rights: names('write'),
    own: ['pid'],
    adds: 'one',
  }),
  'names.unregister': write({
    args: { pid: 'pid', name: 'string' },
    rights: names('write'),
    own: ['pid'],
  }),
  'names.whereis': read({ args: { name: 'string' }, rights: names('read') }),
  'names.list': read({ args: { glob: 'string?' }, rights: names('read') }),
  'names.watch': stream({ args: { glob: 'string?' }, rights: names('read') }),
  // KV: rights on `$kv.<bucket>`
  'kv.get': read({ args: { bucket: 'string', key: 'string' }, rights: kv('read') }),
  'kv.put': write({
    args: {
      bucket: 'string',
      key: 'string',
      value: 'json!',
      options: { options: ['ttl', 'ifRevision', 'owner'] },
    },
    rights: kv('write'),
    // A key is charged to its owner: only the caller's own processes.
    own: ['options.owner'],
    adds: 'owner',
  }),
  'kv.delete': write({
    args: { bucket: 'string', key: 'string', options: { options: ['ifRevision'] } },
    rights: kv('write'),
  }),
  'kv.scan': read({
    args: { bucket: 'string', options: { options: ['prefix', 'glob', 'limit', 'continue'] } },
    rights: kv('read'),
  }),
  'kv.watch': stream({
    args: { bucket: 'string', options: { options: ['prefix', 'glob', 'fromRevision'] } },
    rights: kv('read'),
  }),
} as const

export type Operations = typeof OPERATIONS
export type OperationName = keyof Operations
/** The operations answered by one result. */
export type UnaryOperation = {
  [N in OperationName]: Operations[N]['stream'] extends true ? never : N
}[OperationName]
/** The operations that open a stream. */
export type StreamOperation = Exclude<OperationName, UnaryOperation>
/** The checked arguments of operation `N`. */
export type OpArgs<N extends OperationName> = ArgsOf<Operations[N]['args']>

/** Every operation name, in table order. */
export const OPERATION_NAMES = Object.keys(OPERATIONS) as readonly OperationName[]

/** The option keys operation `name` takes in its `options` argument (HTTP: its query names). */
export function optionKeys(name: OperationName): readonly string[] {
  const field = (OPERATIONS[name].args as Schema)['options']
  return typeof field === 'object' ? field.options : []
}

/** The spec of `name`, or undefined for a name that is no operation. */
export function operation(name: string): OperationSpec | undefined {
  return Object.hasOwn(OPERATIONS, name)
    ? (OPERATIONS[name as OperationName] as unknown as OperationSpec)
    : undefined
}

/**
 * The arguments of a call of `name`, checked against its schema: every read checks its type,
 * options are copied key by key. `InvalidArgument` names the operation and the argument.
 */
export function parseArgs<N extends OperationName>(name: N, raw: unknown): OpArgs<N> {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new InvalidArgument(`${name}: "args" must be an object`)
  }
  const given = (raw ?? {}) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [key, field] of fieldsOf(name)) {
    const value = readField(name, key, field, given[key])
    if (value !== undefined) out[key] = value
  }
  return out as OpArgs<N>
}

/** Every call parses its arguments: the schema's entries are listed once per operation. */
const FIELDS = new Map<string, readonly (readonly [string, Field])[]>()

function fieldsOf(name: OperationName): readonly (readonly [string, Field])[] {
  let fields = FIELDS.get(name)
  if (fields === undefined) {
    fields = Object.entries(OPERATIONS[name].args as Schema)
    FIELDS.set(name, fields)
  }
  return fields
}

// No closure per call here (a `bad` helper would be one per field): every call of every
// operation runs this, and under tsx (`npm start`) each closure also pays a `__name` define.
function readField(op: string, name: string, field: Field, value: unknown): unknown {
  if (typeof field === 'object') {
    if (value === undefined) return {}
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw badArgument(op, name, 'an object')
    }
    const picked: Record<string, unknown> = {}
    for (const key of field.options) {
      const v = (value as Record<string, unknown>)[key]
      if (v !== undefined) picked[key] = v
    }
    return picked
  }
  switch (field) {
    case 'string':
      if (typeof value !== 'string') throw badArgument(op, name, 'a string')
      return value
    case 'string?':
      if (value !== undefined && typeof value !== 'string') throw badArgument(op, name, 'a string')
      return value
    case 'id':
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw badArgument(op, name, 'a string or a number')
      }
      return value
    case 'pid':
      if (typeof value !== 'string') throw badArgument(op, name, 'a pid')
      return value
    case 'pids':
      if (typeof value === 'string') return value
      if (Array.isArray(value) && value.every((pid) => typeof pid === 'string')) return value
      throw badArgument(op, name, 'a pid or an array of pids')
    case 'json!':
      if (value === undefined) throw new InvalidArgument(`${op} needs "${name}"`)
      return value
    case 'json':
      return value
    case 'request':
      return transactRequest(value)
    case 'target':
      targetKind(value)
      return value
    case 'reason':
      return exitReasonFromWire(value)
  }
}

function badArgument(op: string, name: string, what: string): InvalidArgument {
  return new InvalidArgument(`${op}: "${name}" must be ${what}`)
}

/**
 * The pids a call of `name` acts as, joins, removes or makes an owner: each must be a pid of
 * the caller's own session, on every transport.
 */
export function ownPidsOf<N extends OperationName>(name: N, args: OpArgs<N>): readonly string[] {
  const pids: string[] = []
  for (const [head, tail] of ownPathsOf(name)) {
    let value = (args as Record<string, unknown>)[head]
    if (tail !== undefined) value = (value as Record<string, unknown> | undefined)?.[tail]
    if (value === undefined) continue
    if (!Array.isArray(value)) pushPid(pids, name, tail ?? head, value)
    else for (const pid of value as readonly unknown[]) pushPid(pids, name, tail ?? head, pid)
  }
  return pids
}

/** Every call reads its own pids: each operation's `own` paths are split once. */
const OWN_PATHS = new Map<string, readonly (readonly [string, string | undefined])[]>()

function ownPathsOf(name: OperationName): readonly (readonly [string, string | undefined])[] {
  let paths = OWN_PATHS.get(name)
  if (paths === undefined) {
    paths = OPERATIONS[name].own.map((path) => path.split('.') as [string, string | undefined])
    OWN_PATHS.set(name, paths)
  }
  return paths
}

function pushPid(pids: string[], op: string, name: string, pid: unknown): void {
  // Checked here, before the own-pid rule reads it: a pid is a non-empty string.
  if (typeof pid !== 'string' || pid.length === 0) {
    throw new InvalidArgument(`${op}: "${name}" must be a pid, got ${describe(pid)}`)
  }
  pids.push(pid)
}

/** The rights a call of `name` with these (checked) arguments needs. */
export function rightsOf<N extends OperationName>(name: N, args: OpArgs<N>): readonly Need[] {
  return (OPERATIONS[name] as unknown as OperationSpec<Schema>).rights(args)
}

/**
 * A transaction request, checked once for every transport: `then` an array, `if` absent or an
 * array, every op and condition naming its `kind`. Only `if` and `then` are kept.
 */
export function transactRequest(value: unknown): TransactRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgument('a transaction must be an object { if?, then }')
  }
  const { if: conditions, then } = value as { if?: unknown; then?: unknown }
  if (!Array.isArray(then)) throw new InvalidArgument('a transaction needs "then": an array of ops')
  if (conditions !== undefined && !Array.isArray(conditions)) {
    throw new InvalidArgument('a transaction\'s "if" must be an array of conditions')
  }
  for (const op of then as unknown[]) kindOf(op)
  if (conditions !== undefined) for (const condition of conditions as unknown[]) kindOf(condition)
  return conditions === undefined ? { then } : { if: conditions, then }
}

/**
 * The rights a transaction needs, one per op and condition: `write` for each op (and `read`
 * too for claims, which answer the record), `read` for each condition.
 */
function transactionRights(request: TransactRequest): Need[] {
  const rights: Need[] = []
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
  if (typeof kind !== 'string') {
    throw new InvalidArgument('every op and condition of a transaction needs a "kind"')
  }
  return kind
}

/**
 * The kind a send is authorized against: a record's kind, `$group.member` for a group,
 * `$name` for a name, `$process` for a bare pid.
 */
function targetKind(target: unknown): string {
  if (typeof target === 'string') return '$process'
  if (typeof target === 'object' && target !== null) {
    if ('kind' in target && typeof target.kind === 'string') return target.kind
    if ('group' in target) return GROUP_MEMBER_KIND
    if ('name' in target) return NAME_KIND
  }
  throw new InvalidArgument('"target" must be a pid, { kind, id }, { group } or { name }')
}
