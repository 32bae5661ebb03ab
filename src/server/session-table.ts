import { randomUUID, timingSafeEqual } from 'node:crypto'
import type { Dataspace, ExitReason, LocalProcess } from '../engine/index.js'
import { DataspaceError, InvalidArgument } from '../errors/index.js'

/** A network client's process, kept alive by a lease. */
export interface Session {
  /** The session id: unguessable, a capability — whoever holds it acts as the process. */
  readonly id: string
  /** Presented with the session id to re-attach after a reconnect (WebSocket clients). */
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

interface Entry {
  readonly session: Session
  readonly processes: Map<string, LocalProcess>
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
  readonly #ds: Dataspace
  readonly #sessions = new Map<string, Entry>()
  readonly #defaultTtl: number
  readonly #bounds: { readonly min: number; readonly max: number }
  readonly #observe: SessionObserver

  constructor(
    ds: Dataspace,
    defaultTtl: number,
    bounds: { min: number; max: number },
    observe: SessionObserver = () => {},
  ) {
    this.#ds = ds
    this.#defaultTtl = defaultTtl
    this.#bounds = bounds
    this.#observe = observe
  }

  get size(): number {
    return this.#sessions.size
  }

  /** Opens a session: a new process named `name` with a lease of `ttl` ms (default from options). */
  open(name: unknown, ttl: unknown): Session {
    if (typeof name !== 'string') throw new InvalidArgument('session name must be a string')
    const lease = ttl === undefined ? this.#defaultTtl : this.#checkTtl(ttl)
    const process = this.#ds.process(name)
    const id = randomUUID()
    const processes = new Map([[process.id, process]])
    const entry: Entry = {
      session: {
        id,
        resumeToken: randomUUID(),
        process,
        ttl: lease,
        get expiresAt() {
          return entry.expiresAt
        },
        processes,
      },
      processes,
      lastChild: 0,
      expiresAt: Date.now() + lease,
      timer: undefined,
    }
    this.#sessions.set(id, entry)
    this.#arm(entry)
    this.#observe('opened', entry.session)
    // However the process ends (lease, DELETE, ds.close()), the session goes with it.
    void process.exited.then((reason) => {
      this.#forget(entry, reason)
      const text = reasonText(reason)
      this.#observe(text === 'lease-expired' ? 'expired' : 'ended', entry.session, text)
    })
    return entry.session
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
    void child.exited.then(() => entry.processes.delete(child.id))
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
    const session = this.touch(id)
    const expected = Buffer.from(session.resumeToken)
    const given = Buffer.from(resumeToken)
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new InvalidArgument('resume token does not match the session')
    }
    this.#observe('resumed', session)
    return session
  }

  /** Ends a session now: its process exits (`normal`) and everything it owned is retracted. */
  async end(id: string): Promise<void> {
    await exitAll(this.#entry(id), 'normal')
  }

  /** Ends every session (server shutdown); clears every lease timer. */
  async closeAll(): Promise<void> {
    const entries = [...this.#sessions.values()]
    for (const entry of entries) clearTimeout(entry.timer)
    await Promise.all(entries.map((entry) => exitAll(entry, 'shutdown')))
  }

  #arm(entry: Entry): void {
    const delay = Math.max(0, entry.expiresAt - Date.now())
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
    void exitAll(entry, 'lease-expired')
  }

  #forget(entry: Entry, reason: ExitReason): void {
    clearTimeout(entry.timer)
    entry.timer = undefined
    this.#sessions.delete(entry.session.id)
    // Children die with their session, whatever ended it, and with the same reason.
    void exitAll(entry, reason)
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
  const children = [...entry.processes.values()].filter((p) => p !== entry.session.process)
  await Promise.all(children.map((child) => child.exit(reason)))
  await entry.session.process.exit(reason)
}
