import type { Dataspace } from '../dataspace.js'
import type { LocalProcess } from '../engine/index.js'
import { InvalidArgument, ProcessExited } from '../errors/index.js'
import type { ClaimOptions, Json, SendTarget, Stream } from '../model/index.js'
import { exitReasonToWire } from '../protocol/index.js'
import type { OperationName, OpArgs, Operations } from '../protocol/index.js'
import type { Session, SessionTable } from './session-table.js'
import { mailboxOf } from './ws/mailbox-relay.js'

/** What a handler runs with. */
export interface OpEnv {
  readonly ds: Dataspace
  readonly sessions: SessionTable
}

/**
 * Who is calling, after the table's checks: every pid argument the table marks `own` is
 * already known to be one of the session's.
 */
export class Caller {
  readonly #session: Session | undefined

  constructor(session: Session | undefined) {
    this.#session = session
  }

  /** The session; the table's own-pid rule guarantees one wherever a handler acts as a pid. */
  get session(): Session {
    if (this.#session === undefined) throw new InvalidArgument('this operation needs a session')
    return this.#session
  }

  /** The session's live process `pid`; an exited one is `ProcessExited`. */
  process(pid: string): LocalProcess {
    const proc = this.session.processes.get(pid)
    if (proc !== undefined) return proc
    throw new ProcessExited(`process ${pid} has exited`, pid)
  }
}

type Handler<N extends OperationName> = Operations[N]['stream'] extends true
  ? (env: OpEnv, args: OpArgs<N>, caller: Caller) => Stream<unknown>
  : (env: OpEnv, args: OpArgs<N>, caller: Caller) => Promise<unknown>

/**
 * The engine-calling half of every operation, keyed by the names of the operation table
 * (`src/protocol/operations.ts`): a name without a handler here is a type error. Handlers get
 * arguments already checked against the table (shape, rights, own pids, quota); both the
 * WebSocket dispatch and the HTTP routes call them.
 */
export const HANDLERS: { readonly [N in OperationName]: Handler<N> } = {
  // The dataspace
  defineKind: async ({ ds }, a) => {
    await ds.defineKind(a.kind, a.options)
    return null
  },
  get: async ({ ds }, a) => (await ds.get(a.kind, a.id)) ?? null,
  list: ({ ds }, a) => ds.list(a.kind, a.options),
  explain: ({ ds }, a) => ds.explain(a.kind, a.options),
  watch: ({ ds }, a) => ds.watch(a.kind, a.options),
  // Processes of the session
  'process.open': async ({ sessions }, a, c) => {
    sessions.openChild(c.session, a.name, a.pid)
    return null
  },
  'process.exit': async (_env, a, c) => {
    await c.process(a.pid).exit(a.reason)
    return null
  },
  assert: (_env, a, c) => c.process(a.pid).assert(a.kind, a.id, a.data, a.options),
  retract: (_env, a, c) => c.process(a.pid).retract(a.kind, a.id, a.options),
  transact: (_env, a, c) => c.process(a.pid).transact(a.request),
  claim: async (_env, a, c) =>
    (await c.process(a.pid).claim(a.kind, a.options as unknown as ClaimOptions)) ?? null,
  send: (_env, a, c) => c.process(a.pid).send(a.target as SendTarget, a.message),
  monitor: async (_env, a, c) => exitReasonToWire(await c.process(a.pid).monitor(a.target)),
  messages: (_env, a, c) => mailboxOf(c.process(a.pid)),
  // Process groups
  'groups.join': ({ ds }, a) => ds.groups(a.scope).join(a.group, a.pids, a.meta as Json),
  'groups.leave': ({ ds }, a) => ds.groups(a.scope).leave(a.group, a.pids),
  'groups.updateMeta': async ({ ds }, a) => {
    await ds.groups(a.scope).updateMeta(a.group, a.pid, a.meta as Json)
    return null
  },
  'groups.members': ({ ds }, a) => ds.groups(a.scope).members(a.group),
  'groups.localMembers': ({ ds }, a) => ds.groups(a.scope).localMembers(a.group),
  'groups.membersWithMeta': ({ ds }, a) => ds.groups(a.scope).membersWithMeta(a.group),
  'groups.whichGroups': ({ ds }, a) => ds.groups(a.scope).whichGroups(),
  'groups.whichLocalGroups': ({ ds }, a) => ds.groups(a.scope).whichLocalGroups(),
  'groups.broadcast': ({ ds }, a, c) =>
    ds.groups(a.scope).broadcast(c.process(a.from), a.group, a.message),
  'groups.broadcastLocal': ({ ds }, a, c) =>
    ds.groups(a.scope).broadcastLocal(c.process(a.from), a.group, a.message),
  'groups.monitor': ({ ds }, a) => ds.groups(a.scope).monitor(a.group),
  // Names
  'names.register': ({ ds }, a) => ds.names.register(a.pid, a.name, a.meta as Json),
  'names.unregister': async ({ ds }, a) => {
    await ds.names.unregister(a.pid, a.name)
    return null
  },
  'names.whereis': async ({ ds }, a) => (await ds.names.whereis(a.name)) ?? null,
  'names.list': ({ ds }, a) => ds.names.list(a.glob),
  'names.watch': ({ ds }, a) => ds.names.watch(a.glob),
  // KV
  'kv.get': async ({ ds }, a) => (await ds.kv(a.bucket).get(a.key)) ?? null,
  'kv.put': ({ ds }, a) => ds.kv(a.bucket).put(a.key, a.value as Json, a.options),
  'kv.delete': ({ ds }, a) => ds.kv(a.bucket).delete(a.key, a.options),
  'kv.scan': ({ ds }, a) => ds.kv(a.bucket).scan(a.options),
  'kv.watch': ({ ds }, a) => ds.kv(a.bucket).watch(a.options),
}
