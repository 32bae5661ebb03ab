import type {
  ClaimOptions,
  ExitReason,
  Json,
  KindOptions,
  SendTarget,
  Stream,
  TransactRequest,
} from '../../model/index.js'
import type { Dataspace } from '../../dataspace.js'
import { freezeJson } from '../../model/validate.js'
import { InvalidArgument } from '../../errors/index.js'
import { GROUP_MEMBER_KIND } from '../../model/index.js'
import { NAME_KIND } from '../../model/index.js'
import { targetKind, transactionRights } from '../op-rights.js'
import type { SessionTable } from '../session-table.js'
import { exitReasonToWire } from '../../protocol/index.js'
import { mailboxOf } from './mailbox-relay.js'
import type { OpArgs } from './op-args.js'

/** What an operation runs with. */
export interface OpEnv {
  readonly ds: Dataspace
  readonly sessions: SessionTable
}

/** A call answered by one result. */
interface UnaryOp {
  readonly stream?: false
  /** True for operations whose retry after a lost connection is safe (reads). */
  readonly write: boolean
  run(env: OpEnv, args: OpArgs): Promise<unknown>
}

/** A call that opens a stream; its events follow the `null` result. */
interface StreamOp {
  readonly stream: true
  open(env: OpEnv, args: OpArgs): Stream<unknown>
}

export type Operation = UnaryOp | StreamOp

const SELECTOR = ['id', 'fields', 'labels', 'owner'] as const
const kvKind = (args: OpArgs, right: 'read' | 'write'): string => {
  const bucket = args.string('bucket')
  args.require(`$kv.${bucket}`, right)
  return bucket
}
const read = (run: UnaryOp['run']): UnaryOp => ({ write: false, run })
const write = (run: UnaryOp['run']): UnaryOp => ({ write: true, run })

/**
 * Every operation of the WebSocket protocol, by name: the `DataspaceApi` method by method (see
 * `docs/protocol.md`). Rights are checked per kind exactly as the HTTP routes check them;
 * groups and names are the kinds `$group.member` and `$name`, KV buckets `$kv.<bucket>`.
 */
export const OPERATIONS: ReadonlyMap<string, Operation> = new Map<string, Operation>([
  // The dataspace
  [
    'defineKind',
    write(async ({ ds }, a) => {
      const options = a.pick('options', ['fields', 'indexes', 'resident']) as KindOptions
      await ds.defineKind(a.kind('admin'), options)
      return null
    }),
  ],
  ['get', read(async ({ ds }, a) => (await ds.get(a.kind('read'), a.id())) ?? null)],
  [
    'list',
    read(({ ds }, a) =>
      ds.list(a.kind('read'), a.pick('options', [...SELECTOR, 'limit', 'continue'])),
    ),
  ],
  ['explain', read(({ ds }, a) => ds.explain(a.kind('read'), a.pick('options', SELECTOR)))],
  [
    'watch',
    {
      stream: true,
      open: ({ ds }, a) =>
        ds.watch(
          a.kind('read'),
          a.pick('options', [...SELECTOR, 'fromRevision', 'snapshot', 'bufferSize']),
        ),
    },
  ],
  // Processes of the session
  [
    'process.open',
    write(async ({ sessions }, a) => {
      // Another session's pid is Forbidden before its shape is looked at.
      sessions.openChild(a.session, a.string('name'), a.ownPid())
      return null
    }),
  ],
  [
    'process.exit',
    write(async (_env, a) => {
      await a.process().exit(exitReasonFromWire(a.raw('reason')))
      return null
    }),
  ],
  [
    'assert',
    write((_env, a) => {
      const proc = a.process()
      const options = a.pick('options', ['labels', 'ttl', 'ifRevision', 'owner'])
      return proc.assert(a.kind('write'), a.id(), a.raw('data'), options)
    }),
  ],
  [
    'retract',
    write((_env, a) => {
      const proc = a.process()
      return proc.retract(a.kind('write'), a.id(), a.pick('options', ['ifRevision']))
    }),
  ],
  [
    'transact',
    write((_env, a) => {
      const proc = a.process()
      const request = a.pick('request', ['if', 'then']) as unknown as TransactRequest
      authorizeTransaction(a, request)
      return proc.transact(request)
    }),
  ],
  [
    'claim',
    write(async (_env, a) => {
      const proc = a.process()
      const kind = a.kind('write')
      a.require(kind, 'read')
      const options = a.pick('options', ['id', 'fields', 'labels', 'orderBy', 'patch', 'owner'])
      return (await proc.claim(kind, options as unknown as ClaimOptions)) ?? null
    }),
  ],
  [
    'send',
    write((_env, a) => {
      const proc = a.process()
      const target = a.raw('target')
      a.require(targetKind(target), 'write')
      return proc.send(target as SendTarget, a.raw('message'))
    }),
  ],
  [
    'monitor',
    read(async (_env, a) => exitReasonToWire(await a.process().monitor(a.string('target')))),
  ],
  ['messages', { stream: true, open: (_env, a) => mailboxOf(a.process()) }],
  // Process groups
  [
    'groups.join',
    write(({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'write')
      return ds.groups(a.string('scope')).join(a.string('group'), pids(a), a.raw('meta') as Json)
    }),
  ],
  [
    'groups.leave',
    write(({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'write')
      return ds.groups(a.string('scope')).leave(a.string('group'), pids(a))
    }),
  ],
  [
    'groups.updateMeta',
    write(async ({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'write')
      const groups = ds.groups(a.string('scope'))
      await groups.updateMeta(a.string('group'), a.ownPid(), a.raw('meta') as Json)
      return null
    }),
  ],
  ...(['members', 'localMembers', 'membersWithMeta'] as const).map((name): [string, Operation] => [
    `groups.${name}`,
    read(({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'read')
      return ds.groups(a.string('scope'))[name](a.string('group'))
    }),
  ]),
  ...(['whichGroups', 'whichLocalGroups'] as const).map((name): [string, Operation] => [
    `groups.${name}`,
    read(({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'read')
      return ds.groups(a.string('scope'))[name]()
    }),
  ]),
  ...(['broadcast', 'broadcastLocal'] as const).map((name): [string, Operation] => [
    `groups.${name}`,
    write(({ ds }, a) => {
      a.require(GROUP_MEMBER_KIND, 'write')
      const from = a.process('from')
      return ds.groups(a.string('scope'))[name](from, a.string('group'), a.raw('message'))
    }),
  ]),
  [
    'groups.monitor',
    {
      stream: true,
      open: ({ ds }, a) => {
        a.require(GROUP_MEMBER_KIND, 'read')
        return ds.groups(a.string('scope')).monitor(a.optionalString('group'))
      },
    },
  ],
  // Names
  [
    'names.register',
    write(({ ds }, a) => {
      a.require(NAME_KIND, 'write')
      return ds.names.register(a.ownPid(), a.string('name'), a.raw('meta') as Json)
    }),
  ],
  [
    'names.unregister',
    write(async ({ ds }, a) => {
      a.require(NAME_KIND, 'write')
      await ds.names.unregister(a.ownPid(), a.string('name'))
      return null
    }),
  ],
  [
    'names.whereis',
    read(async ({ ds }, a) => {
      a.require(NAME_KIND, 'read')
      return (await ds.names.whereis(a.string('name'))) ?? null
    }),
  ],
  [
    'names.list',
    read(({ ds }, a) => {
      a.require(NAME_KIND, 'read')
      return ds.names.list(a.optionalString('glob'))
    }),
  ],
  [
    'names.watch',
    {
      stream: true,
      open: ({ ds }, a) => {
        a.require(NAME_KIND, 'read')
        return ds.names.watch(a.optionalString('glob'))
      },
    },
  ],
  // KV
  [
    'kv.get',
    read(async ({ ds }, a) => (await ds.kv(kvKind(a, 'read')).get(a.string('key'))) ?? null),
  ],
  [
    'kv.put',
    write(({ ds }, a) => {
      const bucket = kvKind(a, 'write')
      const options = a.pick('options', ['ttl', 'ifRevision', 'owner'])
      if (options.owner !== undefined) a.ownPid('owner', options.owner)
      return ds.kv(bucket).put(a.string('key'), a.raw('value') as Json, options)
    }),
  ],
  [
    'kv.delete',
    write(({ ds }, a) => {
      const bucket = kvKind(a, 'write')
      return ds.kv(bucket).delete(a.string('key'), a.pick('options', ['ifRevision']))
    }),
  ],
  [
    'kv.scan',
    read(({ ds }, a) =>
      ds.kv(kvKind(a, 'read')).scan(a.pick('options', ['prefix', 'glob', 'limit', 'continue'])),
    ),
  ],
  [
    'kv.watch',
    {
      stream: true,
      open: ({ ds }, a) =>
        ds.kv(kvKind(a, 'read')).watch(a.pick('options', ['prefix', 'glob', 'fromRevision'])),
    },
  ],
])

function pids(a: OpArgs): string | string[] {
  const value = a.raw('pids')
  // Only the session's own processes (docs/protocol.md): another client's pid is Forbidden.
  if (typeof value === 'string') return a.ownPid('pids', value)
  if (Array.isArray(value) && value.every((pid) => typeof pid === 'string'))
    return value.map((pid) => a.ownPid('pids', pid))
  throw new InvalidArgument('"pids" must be a pid or an array of pids')
}

function authorizeTransaction(a: OpArgs, request: TransactRequest): void {
  for (const [kind, right] of transactionRights(request)) a.require(kind, right)
}

function exitReasonFromWire(reason: unknown): ExitReason {
  if (reason === undefined) return 'normal'
  // A client's reason reaches monitors and logs: the one value rule holds for it too.
  if (typeof reason === 'string') return freezeJson(reason, 'reason')
  if (typeof reason === 'object' && reason !== null && 'error' in reason)
    return freezeJson(reason, 'reason')
  throw new InvalidArgument('"reason" must be a string or { error }')
}
