import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import type { StoredAnswer, StoredSession } from '../backends/index.js'
import type { Dataspace } from '../dataspace.js'
import type { LocalProcess } from '../engine/index.js'
import type { ExitReason } from '../model/index.js'
import { DataspaceError, InvalidArgument } from '../errors/index.js'
import { SessionStore } from './session-store.js'

/** The longest delay `setTimeout` takes (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** A network client's process, kept alive by a lease. */
export interface Session {
  /** The session id: unguessable, a capability — whoever holds it acts as the process. */
  readonly id: string
  /**
   * Presented with the session id to re-attach after a reconnect (WebSocket clients). Only its
   * hash is stored, so a session restored after a restart learns it again from its client.
   */
  readonly resumeToken: string
  readonly process: LocalProcess
  /** Lease length, in ms. */
  readonly ttl: number
  /** Epoch ms at which the lease runs out unless renewed. */
  readonly expiresAt: number
  /** The session's process and its live child processes, by pid: what its caller may act as. */
  readonly processes: ReadonlyMap<string, LocalProcess>
}

/**
 * Told of every session event: `opened`, `resumed`, `expired` (the lease ran out) or `ended`
 * (any other exit; `reason` is the exit reason).
 */
export type SessionObserver = (
  event: 'opened' | 'resumed' | 'expired' | 'ended',
  session: Session,
  reason?: string,
) => void

/**
 * Told when something the table started on its own (a lease expiry's exit, the exit of a dead
 * session's children, an observer) failed: nobody awaits those, so the table reports them here
 * instead of leaving a rejection unhandled (which would end the Node process).
 */
export type SessionFault = (message: string, session: Session, error: unknown) => void

interface Entry {
  readonly session: Session
  readonly processes: Map<string, LocalProcess>
  readonly name: string
  /** sha256 of the resume token. */
  readonly tokenHash: Buffer
  resumeToken: string
  /** The token name (auth) that opened the session, persisted with it. */
  principal: string | null
  /** The highest child number handed out: child pids are never reused. */
  lastChild: number
  expiresAt: number
  timer: NodeJS.Timeout | undefined
}

/**
 * The server's sessions: each is `ds.process(name)` with a lease. Every request that carries the
 * session renews it; when it runs out the process exits with reason `lease-expired`, and the
 * engine retracts everything it owned in one commit.
 *
 * A renewal only moves the deadline: the timer is re-armed when it fires early, so the hot path
 * (one renewal per request) never touches the timer heap.
 */
export class SessionTable {
  /** Where sessions are kept across a restart (a durable backend), with their answers. */
  readonly store: SessionStore
  readonly #ds: Dataspace
  readonly #sessions = new Map<string, Entry>()
  readonly #defaultTtl: number
  readonly #bounds: { readonly min: number; readonly max: number }
  readonly #observe: SessionObserver
  readonly #fault: SessionFault

  constructor(
    ds: Dataspace,
    defaultTtl: number,
    bounds: { min: number; max: number },
    observe: SessionObserver = () => {},
    fault: SessionFault = (message, session, error) =>
      console.error(`${message} (${session.process.id})`, error),
  ) {
    this.#ds = ds
    this.store = new SessionStore(ds)
    this.#defaultTtl = defaultTtl
    this.#bounds = bounds
    this.#observe = observe
    this.#fault = fault
  }

  get size(): number {
    return this.#sessions.size
  }

  /** Opens a session: a new process named `name` with a lease of `ttl` ms (default from options). */
  open(name: unknown, ttl: unknown, principal: string | null = null): Session {
    if (typeof name !== 'string') throw new InvalidArgument('session name must be a string')
    const lease = ttl === undefined ? this.#defaultTtl : this.#checkTtl(ttl)
    const process = this.#ds.process(name)
    const token = randomUUID()
    const entry = this.#add({
      id: randomUUID(),
      name,
      process,
      children: [],
      lastChild: 0,
      ttl: lease,
      tokenHash: sha256(token),
      resumeToken: token,
      principal,
    })
    this.#persist(entry)
    this.#observe('opened', entry.session)
    return entry.session
  }

  /**
   * Takes back a session persisted by a previous server (durable backends): its processes were
   * restored with the store, and it gets a full lease from now, so a client that reconnects
   * within its TTL resumes it with everything it owned. One that does not come back is reaped.
   */
  adopt(stored: StoredSession): Session | undefined {
    const process = this.#ds.processById(stored.pid)
    if (process === undefined) return undefined
    const children = stored.children
      .map((child) => this.#ds.processById(child.pid))
      .filter((child): child is LocalProcess => child !== undefined)
    const entry = this.#add({
      id: stored.id,
      name: stored.name,
      process,
      children,
      lastChild: stored.lastChild,
      ttl: stored.ttl,
      tokenHash: Buffer.from(stored.resumeTokenHash, 'hex'),
      resumeToken: '',
      principal: stored.principal,
    })
    this.#observe('resumed', entry.session)
    return entry.session
  }

  /**
   * A cluster node (docs/cluster.md, "Resuming on another node"): takes over the session `id`
   * that another node held, when the store has it live and `resumeToken` (and `principal`,
   * the token name the client authenticated as, when auth is on) match what it was opened
   * with. Its processes are served here from now on, with a lease from now; resolves with it
   * and the stored answers of its write calls (`adopted`: it was not served here before), or
   * `undefined` (there is nothing to resume: the client opens a new session).
   */
  async takeOver(
    id: string,
    resumeToken: string,
    principal: string | undefined,
  ): Promise<{ session: Session; answers: readonly StoredAnswer[]; adopted: boolean } | undefined> {
    const taken = await this.#ds.takeOverSession(id, {
      resumeTokenHash: sha256(resumeToken).toString('hex'),
      ...(principal === undefined ? {} : { principal }),
    })
    if (taken === undefined) return undefined
    // Resumed here meanwhile by a second connection that took it over first.
    if (this.#sessions.get(id)?.session.process.alive === true) {
      return { session: this.resume(id, resumeToken), answers: [], adopted: false }
    }
    const session = this.adopt(taken.session)
    if (session === undefined) return undefined
    const entry = this.#sessions.get(id)
    if (entry !== undefined) entry.resumeToken = resumeToken
    return { session, answers: taken.answers, adopted: true }
  }

  /** The token name that opened a session (for checking who may resume it after a restart). */
  principalOf(session: Session): string | null {
    return this.#sessions.get(session.id)?.principal ?? null
  }

  #add(init: {
    id: string
    name: string
    process: LocalProcess
    children: readonly LocalProcess[]
    lastChild: number
    ttl: number
    tokenHash: Buffer
    resumeToken: string
    principal: string | null
  }): Entry {
    const processes = new Map<string, LocalProcess>([[init.process.id, init.process]])
    for (const child of init.children) processes.set(child.id, child)
    const entry: Entry = {
      session: {
        id: init.id,
        get resumeToken() {
          return entry.resumeToken
        },
        process: init.process,
        ttl: init.ttl,
        get expiresAt() {
          return entry.expiresAt
        },
        processes,
      },
      processes,
      name: init.name,
      tokenHash: init.tokenHash,
      resumeToken: init.resumeToken,
      principal: init.principal,
      lastChild: init.lastChild,
      expiresAt: Date.now() + init.ttl,
      timer: undefined,
    }
    this.#sessions.set(init.id, entry)
    this.#arm(entry)
    for (const child of init.children) this.#watchChild(entry, child)
    // However the process ends (lease, DELETE, ds.close()), the session goes with it.
    init.process.exited
      .then((reason) => {
        this.#forget(entry, reason)
        const text = reasonText(reason)
        this.#observe(text === 'lease-expired' ? 'expired' : 'ended', entry.session, text)
      })
      .catch((error: unknown) => this.#fault('session end handling failed', entry.session, error))
    return entry
  }

  #watchChild(entry: Entry, child: LocalProcess): void {
    child.exited
      .then(() => {
        entry.processes.delete(child.id)
        if (this.#sessions.get(entry.session.id) === entry) this.#persist(entry)
      })
      .catch((error: unknown) => this.#fault('child exit handling failed', entry.session, error))
  }

  /** Writes the session to the backend (a no-op in memory), so a restart can resume it. */
  #persist(entry: Entry): void {
    const { session } = entry
    this.store.persist({
      id: session.id,
      resumeTokenHash: entry.tokenHash.toString('hex'),
      pid: session.process.id,
      name: entry.name,
      ttl: session.ttl,
      children: [...entry.processes.values()]
        .filter((p) => p !== session.process)
        .map((p) => ({ pid: p.id, name: p.name })),
      lastChild: entry.lastChild,
      principal: entry.principal,
    })
  }

  /** The live session `id`, its lease renewed; a missing or ended one is `ProcessExited` (410). */
  touch(id: string): Session {
    const entry = this.#entry(id)
    entry.expiresAt = Date.now() + entry.session.ttl
    return entry.session
  }

  /**
   * A child process of `session`, pid `<session pid>.<n>`: the client picks `n` (so it knows the
   * pid at once), which must be above every `n` it used before. The child exits with the session.
   */
  openChild(session: Session, name: unknown, pid: unknown): LocalProcess {
    const entry = this.#entry(session.id)
    const prefix = `${session.process.id}.`
    const n =
      typeof pid === 'string' && pid.startsWith(prefix) ? Number(pid.slice(prefix.length)) : NaN
    if (!Number.isSafeInteger(n) || n <= entry.lastChild || `${prefix}${n}` !== pid) {
      throw new InvalidArgument(
        `a child pid must be "${prefix}<n>" with n an integer above ${entry.lastChild}`,
      )
    }
    if (typeof name !== 'string') throw new InvalidArgument('process name must be a string')
    const child = this.#ds.processWithId(pid, name)
    entry.lastChild = n
    entry.processes.set(child.id, child)
    this.#watchChild(entry, child)
    this.#persist(entry)
    return child
  }

  /** The live session `id` without renewing it (to check who may use it first). */
  find(id: string): Session {
    return this.#entry(id).session
  }

  #entry(id: string): Entry {
    const entry = this.#sessions.get(id)
    if (entry === undefined || !entry.session.process.alive) {
      throw new DataspaceError(
        'ProcessExited',
        'session does not exist or has ended (lease expired or deleted); open a new session',
      )
    }
    return entry
  }

  /** Re-attaches a session after a reconnect: the token must match (compared in constant time). */
  resume(id: string, resumeToken: string): Session {
    const entry = this.#entry(id)
    // Digests have one length, so the comparison takes the same time whatever was given.
    // Checked before renewing: a wrong token must not keep someone else's session alive.
    if (!timingSafeEqual(entry.tokenHash, sha256(resumeToken))) {
      throw new InvalidArgument('resume token does not match the session')
    }
    const session = this.touch(id)
    entry.resumeToken = resumeToken
    this.#observe('resumed', session)
    return session
  }

  /** Ends a session now: its process exits (`normal`) and everything it owned is retracted. */
  async end(id: string): Promise<void> {
    await exitAll(this.#entry(id), 'normal')
  }

  /**
   * Server shutdown: clears every lease timer, and ends every session — unless the store is
   * durable, where sessions are persisted and their clients resume them after the restart.
   */
  async closeAll(): Promise<void> {
    const entries = [...this.#sessions.values()]
    for (const entry of entries) clearTimeout(entry.timer)
    if (this.store.durable) {
      this.#sessions.clear()
      return
    }
    await Promise.all(entries.map((entry) => exitAll(entry, 'shutdown')))
  }

  #arm(entry: Entry): void {
    // Node fires a longer delay after 1 ms (TimeoutOverflowWarning): clamp; #check re-arms.
    const delay = Math.min(Math.max(0, entry.expiresAt - Date.now()), MAX_TIMER_MS)
    entry.timer = setTimeout(() => this.#check(entry), delay)
    // A lease must never keep the Node process alive on its own.
    entry.timer.unref()
  }

  #check(entry: Entry): void {
    entry.timer = undefined
    if (!this.#sessions.has(entry.session.id)) return
    if (Date.now() < entry.expiresAt) {
      this.#arm(entry)
      return
    }
    this.#sessions.delete(entry.session.id)
    // A cluster node does not retract what the session owned itself: another node may have
    // taken it over meanwhile. Its lease in the store runs out, and a reaper retracts (or the
    // node that took it over keeps it). Anything still alive here after that exits as usual.
    const released = this.#ds.releaseSession(entry.session.id)
    const exit =
      released === undefined
        ? exitAll(entry, 'lease-expired')
        : released.then(() =>
            entry.session.process.alive ? exitAll(entry, 'lease-expired') : undefined,
          )
    this.#exitUnawaited(exit, entry)
  }

  /**
   * Reports an exit nobody awaits when it fails. An exit is applied in memory before it is
   * written (its records are retracted, watchers told, the process gone), and its commit stays
   * queued in the backend runtime, which retries it until storage takes it: so an `Unavailable`
   * here means "not yet durable", not "not exited". Anything else is reported as a failure.
   */
  #exitUnawaited(exit: Promise<void>, entry: Entry): void {
    exit.catch((error: unknown) => {
      const pending = error instanceof DataspaceError && error.code === 'Unavailable'
      this.#fault(
        pending
          ? 'session exit not yet durable; the backend retries it until storage is back'
          : 'session exit failed',
        entry.session,
        error,
      )
    })
  }

  #forget(entry: Entry, reason: ExitReason): void {
    clearTimeout(entry.timer)
    entry.timer = undefined
    if (this.#sessions.get(entry.session.id) === entry) this.#sessions.delete(entry.session.id)
    this.store.drop(entry.session.id)
    // Children die with their session, whatever ended it, and with the same reason. Those an
    // exitAll already ended are not alive: their failures were reported there, not twice.
    this.#exitUnawaited(exitChildren(entry, reason), entry)
  }

  #checkTtl(ttl: unknown): number {
    const { min, max } = this.#bounds
    if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < min || ttl > max) {
      throw new InvalidArgument(`session ttl must be an integer from ${min} to ${max} ms`)
    }
    return ttl
  }
}

function reasonText(reason: ExitReason): string {
  return typeof reason === 'string' ? reason : 'error'
}

/** Exits the children first, then the session's own process (each exit is one commit). */
async function exitAll(entry: Entry, reason: ExitReason): Promise<void> {
  await exitChildren(entry, reason, false)
  await entry.session.process.exit(reason)
}

/** Exits the session's children, or only those still alive (each exit is one commit). */
async function exitChildren(entry: Entry, reason: ExitReason, aliveOnly = true): Promise<void> {
  const children = [...entry.processes.values()].filter(
    (p) => p !== entry.session.process && (p.alive || !aliveOnly),
  )
  await Promise.all(children.map((child) => child.exit(reason)))
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
