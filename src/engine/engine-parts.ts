import { Closed, InvalidArgument, Unavailable } from '../errors/index.js'
import { checkPositive } from '../model/validate.js'
import { durableGate } from '../streams/durable-gate.js'
import type { DurableGate } from '../streams/durable-gate.js'
import { randomBytes } from 'node:crypto'
import { BackedReads } from './backed-reads.js'
import { Follower } from './follower.js'
import { CommitPath } from './commit.js'
import { resolveOptions } from './engine-options.js'
import type { DataspaceOptions, DataspaceStats, ResolvedOptions } from './engine-options.js'
import { History } from './history.js'
import { KindCatalog } from './kind-catalog.js'
import { MemoryAccount } from './memory-account.js'
import { canQuery, NonResidentReads } from './non-resident-reads.js'
import { PendingCommits } from './pending-commits.js'
import type { Backend, ChangesPage, LoadedState, StoredSession } from './ports/backend.js'
import type { FollowerHost } from './follower.js'
import { ProcessOps } from './process-ops.js'
import type { EngineCore } from './process-ops.js'
import { ProcessTable } from './process-table.js'
import { Recovery } from './start-up.js'
import { BackendRuntime } from './storage/runtime.js'
import { TtlExpiry } from './ttl-expiry.js'
import { WatchRegistry } from './watch-registry.js'
import type { WatchContext } from './watch-registry.js'
import { WriteTurn } from './write-turn.js'
import { SessionLeases } from './session-leases.js'

/** Every part of one engine (see engine.ts for what each does). */
export interface EngineParts {
  readonly node: string
  readonly options: ResolvedOptions
  readonly memory: MemoryAccount
  readonly history: History
  readonly catalog: KindCatalog
  readonly watches: WatchRegistry
  readonly reads: NonResidentReads
  readonly expiry: TtlExpiry
  readonly commits: CommitPath
  readonly processes: ProcessTable
  readonly recovery: Recovery
  /** Durable backends only: the backend runtime, and what holds readers until durable. */
  readonly runtime: BackendRuntime | undefined
  readonly gate: DurableGate | undefined
  /** Reads of non-resident kinds: only with a durable backend that answers queries. */
  readonly backed: BackedReads | undefined
  /**
   * The feed reader of a follower (backend opened with `follow: true`) or of a cluster node
   * (`cluster: true`), started by `ready()`.
   */
  readonly follower: Follower | undefined
  /** A cluster node's write turn (docs/cluster.md, "The write turn"). */
  readonly turn: WriteTurn | undefined
  /** A cluster node's session leases and reaper (docs/cluster.md, "Sessions in the store"). */
  readonly leases: SessionLeases | undefined
  /** The backend's state, to install once the engine can be used as a context. */
  readonly state: LoadedState | undefined
}

/** What the parts need of the engine façade that owns them. */
export type EngineHost = EngineCore & WatchContext

/**
 * Checks `options`, loads a synchronous backend's state when none was `loaded`, and builds the
 * parts of the engine `host`, wired to each other. Nothing runs yet: the host installs `state`
 * (`recovery.install`) once it holds the parts.
 */
export function assemble(
  host: EngineHost,
  options: DataspaceOptions,
  loaded: LoadedState | undefined,
): EngineParts {
  const backend = options.backend ?? 'memory'
  if (
    backend !== 'memory' &&
    (typeof backend !== 'object' || typeof backend.write !== 'function')
  ) {
    throw new InvalidArgument(
      `backend must be "memory" or a backend object (sqliteBackend, postgresBackend), got ${JSON.stringify(backend)}`,
    )
  }
  const state = loaded ?? (backend === 'memory' ? undefined : loadSync(backend))
  const seam = backend === 'memory' ? undefined : backend.follower
  const cluster = backend === 'memory' ? undefined : backend.cluster
  if (seam !== undefined && cluster !== undefined) {
    throw new InvalidArgument(
      `the ${(backend as Backend).name} backend is both a follower and a cluster node`,
    )
  }
  // Pids (and a cluster node's `$watch` ids) carry the node's name: on a shared store it must
  // be unique, so a follower's or a node's default one is random.
  const node =
    options.node ??
    (seam !== undefined
      ? `follower-${randomBytes(4).toString('hex')}`
      : cluster !== undefined
        ? `node-${randomBytes(4).toString('hex')}`
        : 'local')
  if (node.length === 0 || /[/#]/.test(node))
    throw new InvalidArgument('node must be non-empty, without "/" or "#"')
  const resolved = resolveOptions(options)
  const memory = new MemoryAccount(resolved)
  const log = options.log ?? { warn: (m, f) => console.warn(m, f) }
  const revision = state?.revision ?? 0
  const history = new History(resolved.historySize, resolved.historyBytes, revision)
  const durable = backend !== 'memory' && backend.capabilities.durable ? backend : undefined
  if (cluster !== undefined && durable === undefined) {
    throw new InvalidArgument(
      `the ${(backend as Backend).name} backend cannot be a cluster node: it is not durable`,
    )
  }
  const ackTimeoutMs = checkPositive('durableTimeoutMs', options.durableTimeoutMs ?? 10_000)
  let turn: WriteTurn | undefined
  let leases: SessionLeases | undefined
  const pending = durable === undefined ? undefined : new PendingCommits()
  let backed: BackedReads | undefined
  const runtime =
    durable === undefined
      ? undefined
      : new BackendRuntime(durable, revision, {
          log,
          ackTimeoutMs,
          onDurable: () => {
            pending?.settle(runtime?.durableRevision ?? 0)
            backed?.collect()
          },
          onRefused: (refused) => recovery.undoRefused(refused),
          onSettled: () => turn?.settled(),
          ...(cluster === undefined
            ? {}
            : {
                onDiverged: (error: Error) => turn?.diverged(error),
                node,
                onSessionPut: (session: StoredSession) => leases?.sessionPut(session),
              }),
          ...(state === undefined ? {} : { restored: state }),
        })
  const queryBackend = durable !== undefined && canQuery(durable) ? durable : undefined
  if (runtime !== undefined && queryBackend !== undefined) {
    backed = new BackedReads(queryBackend, () => runtime.durableRevision)
  }
  const closed = (): boolean => host.closed
  const catalog = new KindCatalog(backed !== undefined, runtime?.declareKind.bind(runtime))
  const watches = new WatchRegistry(host, memory.watchQueues)
  const reads = new NonResidentReads(
    {
      context: host,
      log,
      get closed() {
        return closed()
      },
    },
    catalog,
    backed,
    queryBackend,
  )
  const expiry: TtlExpiry = new TtlExpiry({
    context: host,
    get closed() {
      return closed()
    },
    get dispatching(): boolean {
      return commits.dispatching
    },
    get writesRefused(): string | undefined {
      return commits.writesRefused
    },
    system: (build) => commits.system(build),
  })
  const commits: CommitPath = new CommitPath(
    {
      context: host,
      catalog,
      reads,
      memory,
      history,
      watches,
      expiry,
      beginRead: () => host.beginRead(),
      closed,
      processCount: () => processes.size,
      pending,
      runtime,
      backed,
    },
    revision,
  )
  if (seam !== undefined) {
    commits.refuseWrites(
      `this node follows a ${(backend as Backend).name} store another server writes ` +
        '(follow: true): it serves reads and watches, and refuses writes; write on the writer',
    )
  }
  const ops = new ProcessOps(host, commits)
  const processes = new ProcessTable(node, ops, {
    size: resolved.mailboxSize,
    bytes: resolved.mailboxBytes,
    meter: memory.mailboxes,
  })
  const recovery = new Recovery({
    context: host,
    closed,
    catalog,
    processes,
    commits,
    reads,
    memory,
    expiry,
    pending,
    backed,
    runtime,
    unwrittenExits: ops.unwrittenExits,
  })
  const gate = runtime === undefined ? undefined : durableGate(runtime)
  const reader = seam ?? cluster
  const follower =
    reader === undefined
      ? undefined
      : new Follower(
          reader,
          feedOf(backend as Backend),
          followerHost(host, catalog, commits, () => turn?.following ?? true),
          {
            pollMs: checkTimerMs('followPollMs', options.followPollMs ?? 250),
            pageSize: 1_000,
            log,
          },
        )
  if (cluster !== undefined && runtime !== undefined && follower !== undefined) {
    turn = new WriteTurn(
      cluster,
      {
        get closed() {
          return closed()
        },
        get revision() {
          return commits.revision
        },
        get written() {
          return runtime.written
        },
        catchUp: (page, after) => follower.catchUpTo(page, after),
        rewind: (state) => {
          runtime.discard(new Error('the store is behind this node'))
          recovery.rewind(state, ops.unwrittenExits)
          runtime.restarted()
        },
        follow: () => follower.wake(),
      },
      { log, timeoutMs: ackTimeoutMs },
    )
    commits.useTurn(turn)
    leases = new SessionLeases(
      cluster,
      {
        node,
        get sessions() {
          return runtime.sessions
        },
        isWritten: (id) => runtime.isWritten(id),
        reap: (session) => ops.reap(session),
        adopt: (session) => {
          for (const { pid, name } of [session, ...session.children]) {
            if (!processes.isAlive(pid)) processes.register(pid, name)
          }
          runtime.adoptSession(session)
        },
        caughtUp: async (revision) => {
          const deadline = Date.now() + ackTimeoutMs
          while (commits.revision < revision) {
            if (closed()) throw new Closed('the dataspace is closed')
            if (Date.now() > deadline) {
              throw new Unavailable(
                `this node has not applied revision ${revision} within ${ackTimeoutMs} ms`,
              )
            }
            follower.wake()
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
        },
        lose: (session) => {
          // Forgotten here too: nothing more is written for it (its delete touches only a row
          // this node holds with a live lease, so a row left to the reaper stays).
          runtime.deleteSession(session.id)
          for (const pid of [session.pid, ...session.children.map((child) => child.pid)]) {
            const proc = processes.get(pid)
            if (proc === undefined || !proc.alive) continue
            processes.forget(proc)
            proc.abandon('lease-expired')
          }
        },
      },
      log,
    )
  }
  return {
    node,
    options: resolved,
    memory,
    history,
    catalog,
    watches,
    reads,
    expiry,
    commits,
    processes,
    recovery,
    runtime,
    gate,
    backed,
    follower,
    turn,
    leases,
    state,
  }
}

/** The feed a follower reads: a backend with a follower seam must keep one. */
function feedOf(backend: Backend): (revision: number, limit: number) => Promise<ChangesPage> {
  if (typeof backend.changesSince !== 'function' || !backend.capabilities.changes) {
    throw new InvalidArgument(`the ${backend.name} backend has no changes feed to follow`)
  }
  const feed = backend as Backend & Required<Pick<Backend, 'changesSince'>>
  return (revision, limit) => feed.changesSince(revision, limit)
}

function followerHost(
  host: EngineHost,
  catalog: KindCatalog,
  commits: CommitPath,
  following: () => boolean,
): FollowerHost {
  return {
    get revision() {
      return commits.revision
    },
    get closed() {
      return host.closed
    },
    get following() {
      return following()
    },
    knowsKind: (kind) => catalog.get(kind) !== undefined,
    restoreKinds: (kinds) => {
      for (const kind of kinds) catalog.restore(kind)
    },
    applyReplicated: (commit) => commits.applyReplicated(commit),
    resync: (state) => commits.resync(state),
  }
}

/** The counters of `stats`, read from the parts. */
export function statsOf(parts: EngineParts): DataspaceStats {
  const { memory, watches, processes, history, catalog } = parts
  memory.watches = watches.hub.size
  memory.processes = processes.size
  return {
    revision: parts.commits.revision,
    records: catalog.recordCount,
    kinds: catalog.size,
    processes: processes.size,
    watchers: watches.hub.size,
    watchResets: watches.counters.resets,
    droppedWatchMessages: watches.counters.droppedMessages,
    droppedMailboxMessages: processes.droppedMessages,
    historyFloor: history.floor,
    historyBytes: history.bytes,
    historyTrimmedCommits: history.trimmed,
    watchByteResets: watches.counters.byteResets,
    recordBytes: memory.records,
    watchQueueBytes: memory.watchQueues.bytes,
    mailboxBytes: memory.mailboxes.bytes,
    memoryUsedBytes: memory.used,
    memoryBudgetBytes: memory.budget,
    memoryRefusedWrites: memory.refused,
    writeTurns: parts.turn?.turns ?? 0,
  }
}

/** The state of a backend that loads synchronously (SQLite); others need `openDataspace`. */
function loadSync(backend: Backend): LoadedState {
  const openSync = (backend as Partial<{ openSync(): LoadedState }>).openSync
  if (typeof openSync !== 'function') {
    throw new InvalidArgument(
      `the ${backend.name} backend loads asynchronously: use await openDataspace({ backend })`,
    )
  }
  return openSync.call(backend)
}

/**
 * A timer's period in ms: positive and at most 2^31 − 1, the longest `setTimeout` and
 * `setInterval` take (Node fires a longer one after 1 ms).
 */
function checkTimerMs(name: string, value: number): number {
  checkPositive(name, value)
  if (value > 2 ** 31 - 1) {
    throw new InvalidArgument(`${name} must be at most ${2 ** 31 - 1} ms, got ${value}`)
  }
  return value
}
