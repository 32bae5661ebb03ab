import { Closed, Conflict, Unavailable } from '../../errors/index.js'
import { NeverDurable } from '../../streams/durable-gate.js'
import type { DataspaceError } from '../../errors/index.js'
import { emptyBatch, refusedError, refusesContent, splitBatch } from './refusal.js'
import { AnswerQueue } from './answer-queue.js'
import type {
  Backend,
  StoredAnswer,
  StoredCommit,
  StoredKind,
  StoredSession,
  WriteBatch,
} from '../ports/backend.js'

/** What the runtime reports (the server passes its logger's methods). */
export interface BackendLog {
  warn(message: string, fields?: Record<string, unknown>): void
}

interface Waiter {
  readonly revision: number
  /** The writer of the commit at `revision`: it fails if that commit is refused. */
  readonly writer: boolean
  readonly since: number
  resolve(): void
  reject(error: Error): void
}

/** A commit the backend refused for its content: an empty commit is stored at its revision. */
export interface RefusedCommit {
  readonly revision: number
  /** What its writers get (`InvalidArgument`, naming the backend and its reason). */
  readonly error: DataspaceError
}

const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 2_000
/** Refused revisions remembered for a `waitFor` that comes late (after the refusal). */
const REFUSED_KEPT = 1_024

/**
 * Owns a backend for the engine (Kysely's RuntimeDriver): closed-state errors, and **group
 * commit** — commits applied in memory during one turn are queued and written as ONE batch at the
 * end of the turn, and every write in it is acknowledged when that batch is durable. A failed
 * batch (a database restarting) is retried with backoff, in order, with whatever queued up
 * meanwhile; writers waiting longer than `ackTimeoutMs` (10 s) get `Unavailable` (the write may
 * still land).
 * A failed batch is retried exactly as it was, with its id, so that a backend can tell a retry
 * of a batch it did commit (the answer was lost) from a second writer.
 *
 * A batch the backend refuses for its content (`refusesContent`) is never retried as it was: it
 * is bisected until the refused commits are alone; the rest is written in order, each refused
 * commit is stored EMPTY at its revision (revisions stay gap-free), its writers get the error,
 * and `onRefused` lets the engine undo it in memory (docs/backends.md, "Refused writes").
 */
export class BackendRuntime {
  readonly backend: Backend
  readonly #log: BackendLog
  /** How long a write waits for its batch to become durable before it fails `Unavailable`. */
  readonly #ackTimeoutMs: number
  #commits: StoredCommit[] = []
  #kinds = new Map<string, StoredKind>()
  #sessionPuts = new Map<string, StoredSession>()
  #sessionDeletes = new Set<string>()
  #waiters: Waiter[] = []
  /** The highest revision known durable. */
  #durable: number
  #scheduled = false
  #writing: Promise<void> | undefined
  #retryDelay = RETRY_MIN_MS
  #closed = false
  /** Set by `discard` until `restarted`: what waits past the durable revision fails with it. */
  #dropped: NeverDurable | undefined
  /** A batch that failed: it is retried as it was (same id, same contents) before anything else. */
  #failed: WriteBatch | undefined
  #batches = 0
  /** Since when writes have been failing, and why (undefined: the last write went through). */
  #failing: { readonly since: number; readonly error: string } | undefined
  readonly #onDurable: (() => void) | undefined
  readonly #onRefused: ((refused: RefusedCommit) => void) | undefined
  readonly #onSettled: (() => void) | undefined
  readonly #onDiverged: ((error: Error) => void) | undefined
  readonly #onSessionPut: ((session: StoredSession) => void) | undefined
  /** Parts of a refused batch, written in order before anything queued later. */
  #split: WriteBatch[] = []
  /** Recently refused revisions and their errors (a waiter for one of them is failed). */
  readonly #refused = new Map<number, DataspaceError>()
  readonly #runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`
  /** Answers of write calls, written in the batch of the commit each answers. */
  readonly answers: AnswerQueue
  /** Sessions the backend had when it was opened (the server adopts them). */
  readonly restoredSessions: readonly StoredSession[]
  /** Stored answers of those sessions' write calls, oldest first (the server restores them). */
  readonly restoredAnswers: readonly StoredAnswer[]
  /** Every stored session, as last put: their processes outlive this run (see `keptPids`). */
  readonly #stored = new Map<string, StoredSession>()
  /** The stored session each of their pids belongs to (a cluster node fences on it). */
  readonly #sessionOfPid = new Map<string, string>()
  /**
   * A cluster node's name (docs/cluster.md, "Sessions in the store"): its batches carry it, its
   * sessions' commits are fenced on their leases, and a session's first put creates its row.
   */
  readonly #node: string | undefined
  /** Sessions whose first put (`fresh`) is not yet durable. */
  readonly #unwritten = new Set<string>()

  constructor(
    backend: Backend,
    revision: number,
    options: {
      readonly log: BackendLog
      readonly ackTimeoutMs: number
      /** Called each time more commits are durable. */
      readonly onDurable?: () => void
      /** Called when a commit is refused for its content, before its empty stand-in is written. */
      readonly onRefused?: (refused: RefusedCommit) => void
      /** Called each time a write settled (went through or failed): see `written`. */
      readonly onSettled?: () => void
      /**
       * A cluster node's (docs/cluster.md): called when the store refuses a batch with
       * `Conflict` because another node wrote first. Every unwritten commit is then dropped
       * and its writers (and readers waiting for it) fail `Unavailable`: the node starts over.
       * Without it, a `Conflict` is retried like any failure.
       */
      readonly onDiverged?: (error: Error) => void
      /** Called when a session is put (a cluster node's leases renew a short one at once). */
      readonly onSessionPut?: (session: StoredSession) => void
      /** A cluster node's name: see `#node`. */
      readonly node?: string
      /** What the backend loaded beside the records: sessions and their stored answers. */
      readonly restored?: {
        readonly sessions: readonly StoredSession[]
        readonly answers?: readonly StoredAnswer[] | undefined
      }
    },
  ) {
    this.backend = backend
    this.#durable = revision
    this.#log = options.log
    this.#ackTimeoutMs = options.ackTimeoutMs
    this.#onDurable = options.onDurable
    this.#onRefused = options.onRefused
    this.#onSettled = options.onSettled
    this.#onDiverged = options.onDiverged
    this.answers = new AnswerQueue(revision)
    this.restoredSessions = options.restored?.sessions ?? []
    this.restoredAnswers = options.restored?.answers ?? []
    this.#node = options.node
    this.#onSessionPut = options.onSessionPut
    for (const session of this.restoredSessions) this.#keep(session)
  }

  /**
   * The pids of stored sessions and their children: processes that outlive this run, kept (not
   * exited) when the engine closes, so their clients resume them after a restart.
   */
  keptPids(): Set<string> {
    return new Set(this.#sessionOfPid.keys())
  }

  /** Every stored session, as last put (a cluster node renews their leases). */
  get sessions(): ReadonlyMap<string, StoredSession> {
    return this.#stored
  }

  /** Whether session `id` is stored: its first put is durable (or it was restored). */
  isWritten(id: string): boolean {
    return this.#stored.has(id) && !this.#unwritten.has(id)
  }

  #keep(session: StoredSession): void {
    const before = this.#stored.get(session.id)
    if (before !== undefined) for (const pid of pidsOf(before)) this.#sessionOfPid.delete(pid)
    this.#stored.set(session.id, session)
    for (const pid of pidsOf(session)) this.#sessionOfPid.set(pid, session.id)
  }

  #unkeep(id: string): void {
    const before = this.#stored.get(id)
    if (before !== undefined) for (const pid of pidsOf(before)) this.#sessionOfPid.delete(pid)
    this.#stored.delete(id)
    this.#unwritten.delete(id)
  }

  /** The processes the store kept from its previous run, to restore at start-up (pid, name). */
  restoredProcesses(): { readonly pid: string; readonly name: string }[] {
    return this.restoredSessions.flatMap((session) => [
      { pid: session.pid, name: session.name },
      ...session.children.map((child) => ({ pid: child.pid, name: child.name })),
    ])
  }

  /** The highest revision known durable. */
  get durableRevision(): number {
    return this.#durable
  }

  /**
   * Whether writes are going through: `failing` while a batch is being retried (the database
   * is out of reach), with when that began and the first error; `/readyz` reports it.
   */
  get health(): BackendHealth {
    const failing = this.#failing
    return failing === undefined
      ? { backend: this.backend.name, ok: true }
      : { backend: this.backend.name, ok: false, ...failing }
  }

  /**
   * Everything up to `revision` is durable without this runtime writing it: a follower applied
   * a commit the writer stored (docs/cluster.md, "Followers").
   */
  advance(revision: number): void {
    if (revision > this.#durable) this.#acknowledge(revision)
  }

  /** Nothing queued, nothing being written: every commit handed over is durable (or dropped). */
  get written(): boolean {
    return this.#writing === undefined && !this.#scheduled && !this.#pending
  }

  /**
   * The node started over from the store (`discard` before it): revisions after the durable one
   * are the store's again, and may be waited for.
   */
  restarted(): void {
    this.#dropped = undefined
  }

  /**
   * Queues a commit applied in memory for the next batch. On a cluster node, a commit made by
   * `writer`, a process of a stored session, is fenced on that session's lease; `ends` names
   * the stored sessions a reaper's commit ends (see `StoredCommit`).
   */
  commit(commit: StoredCommit, writer?: string | null, ends?: readonly string[]): void {
    const session =
      this.#node === undefined || writer == null ? undefined : this.#sessionOfPid.get(writer)
    if (session === undefined && ends === undefined) this.#commits.push(commit)
    else
      this.#commits.push({
        ...commit,
        ...(session === undefined ? {} : { session }),
        ...(ends === undefined ? {} : { ends }),
      })
    this.#schedule()
  }

  declareKind(kind: StoredKind): void {
    this.#kinds.set(kind.kind, kind)
    this.#schedule()
  }

  /** Stores a session (the server's), so that it and its processes outlive a restart. */
  putSession(session: StoredSession): void {
    if (this.#node !== undefined && !this.#stored.has(session.id)) this.#unwritten.add(session.id)
    this.#keep(session)
    this.#sessionDeletes.delete(session.id)
    this.#sessionPuts.set(session.id, session)
    this.#schedule()
    this.#onSessionPut?.(session)
  }

  /**
   * Serves a session another node stored and this one took over (its row is this node's now):
   * kept like a stored session, without a put.
   */
  adoptSession(session: StoredSession): void {
    this.#keep(session)
  }

  /** Forgets a stored session (it ended): its processes no longer outlive this run. */
  deleteSession(id: string): void {
    // A cluster node's session that ends before its first put is written: the put stays, so
    // that the row its queued commits are fenced on exists, and is deleted in the same batch.
    const put = this.#sessionPuts.get(id)
    if (this.#unwritten.has(id) && put !== undefined)
      this.#sessionPuts.set(id, { ...put, fresh: true })
    else this.#sessionPuts.delete(id)
    this.#unkeep(id)
    this.#sessionDeletes.add(id)
    this.#schedule()
  }

  /**
   * Resolves when every commit up to `revision` is durable. With `writer` (the caller made the
   * commit AT `revision`), rejects when the backend refused that commit, with its error; anyone
   * else (an exit that changed nothing, a read) only waits for the revision.
   */
  waitFor(revision: number, writer = false): Promise<void> {
    if (this.#closed) return Promise.reject(new Closed('the dataspace is closed'))
    // Dropped and not yet replaced (a cluster node starting over): never durable as it was.
    if (this.#dropped !== undefined && revision > this.#durable)
      return Promise.reject(this.#dropped)
    const refused = writer ? this.#refused.get(revision) : undefined
    if (refused !== undefined) return Promise.reject(refused)
    if (revision <= this.#durable) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#waiters.push({ revision, writer, since: Date.now(), resolve, reject })
    })
  }

  /** Writes what is queued now and waits for it (shutdown, tests). */
  async flush(): Promise<void> {
    for (;;) {
      if (this.#writing !== undefined) {
        await this.#writing
        continue
      }
      if (!this.#pending) return
      if (this.#retrying) await new Promise((resolve) => setTimeout(resolve, this.#retryDelay))
      if (this.#writing === undefined) this.#startWrite()
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await this.flush()
    this.#closed = true
    await this.backend.close()
  }

  #retrying = false

  get #pending(): boolean {
    return (
      this.#failed !== undefined ||
      this.#split.length > 0 ||
      this.#commits.length > 0 ||
      this.#kinds.size > 0 ||
      this.#sessionPuts.size > 0 ||
      this.#sessionDeletes.size > 0 ||
      this.answers.pending
    )
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing !== undefined) return
    this.#scheduled = true
    // The end of the turn: everything applied until then shares one transaction.
    setImmediate(() => {
      this.#scheduled = false
      if (this.#writing === undefined && this.#pending) this.#startWrite()
    })
  }

  #startWrite(): void {
    if (this.#waitForAnswers()) return
    const batch = this.#failed ?? this.#split.shift() ?? this.#takeBatch()
    this.#failed = undefined
    const last = batch.commits.at(-1)?.revision
    // A write that hangs (a network that drops packets silently) must not hold writers forever.
    const watchdog = setTimeout(() => this.#timeOutWaiters(), this.#ackTimeoutMs + 1)
    this.#writing = this.backend.write(batch).then(
      () => {
        clearTimeout(watchdog)
        this.#writing = undefined
        this.#retrying = false
        this.#retryDelay = RETRY_MIN_MS
        this.#failing = undefined
        for (const put of batch.sessions.put) if (put.fresh === true) this.#unwritten.delete(put.id)
        if (last !== undefined) this.#acknowledge(last)
        if (this.#pending) this.#schedule()
        this.#onSettled?.()
      },
      (error: unknown) => {
        clearTimeout(watchdog)
        this.#writing = undefined
        if (refusesContent(this.backend, error) && this.#isolate(batch, error)) {
          // Not retried as it was: its parts (or the empty stand-in) go next, at once.
          this.#retrying = false
          this.#retryDelay = RETRY_MIN_MS
          this.#schedule()
          return
        }
        if (this.#onDiverged !== undefined && error instanceof Conflict) {
          this.discard(error, batch)
          this.#onDiverged(error)
          this.#onSettled?.()
          return
        }
        this.#retrying = true
        this.#failed = batch
        this.#failing ??= {
          since: Date.now(),
          error: error instanceof Error ? error.message : String(error),
        }
        this.#log.warn('backend write failed; retrying', {
          backend: this.backend.name,
          error: error instanceof Error ? error.message : String(error),
          retryInMs: this.#retryDelay,
        })
        this.#timeOutWaiters()
        const delay = this.#retryDelay
        this.#retryDelay = Math.min(RETRY_MAX_MS, this.#retryDelay * 2)
        // Not unref'd: unwritten commits must keep the process alive until they are durable.
        setTimeout(() => {
          if (this.#writing === undefined && this.#pending && !this.#closed) this.#startWrite()
        }, delay)
      },
    )
  }

  /**
   * Handles a batch refused for its content: bisects it, or refuses its one commit, or drops its
   * one kind or session (logged: there is no writer to tell). False when there is nothing to
   * isolate (an empty commit refused): that is not the content, so it is retried as before.
   */
  #isolate(batch: WriteBatch, error: unknown): boolean {
    const reason = error instanceof Error ? error.message : String(error)
    const parts = splitBatch(batch, () => this.#nextId())
    if (parts.length > 0) {
      this.#split.unshift(...parts)
      this.#log.warn('backend refused a batch; writing it in parts to find what it refuses', {
        backend: this.backend.name,
        error: reason,
        commits: batch.commits.length,
      })
      return true
    }
    const commit = batch.commits[0]
    if (commit !== undefined) {
      // An empty commit is not content, unless it ends sessions (a reaper's, refused because a
      // lease is live again): retried as it was, it would be refused forever.
      if (commit.changes.length === 0 && commit.ends === undefined) return false
      this.#refuse(commit, error)
      return true
    }
    this.#log.warn('backend refused a kind declaration or a session; it is not stored', {
      backend: this.backend.name,
      error: reason,
      kinds: batch.kinds.map((kind) => kind.kind),
      sessions: [...batch.sessions.put.map((s) => s.id), ...batch.sessions.delete],
    })
    return true
  }

  /**
   * True when an answer is still held for a commit of the next batch: the batch is taken once
   * it is filled (`#writing` covers the wait, so flush and scheduling wait too).
   */
  #waitForAnswers(): boolean {
    // Only a new batch takes answers: a retried batch or a refused batch's parts have theirs.
    const held =
      this.#failed === undefined && this.#split.length === 0 ? this.answers.blocking() : undefined
    if (held === undefined) return false
    this.#writing = held.then(() => {
      this.#writing = undefined
      if (this.#pending && !this.#closed) this.#startWrite()
    })
    return true
  }

  /**
   * Drops every unwritten commit (`failed` and whatever queued after it), keeping their kind
   * declarations, and fails whoever waits for one: none will ever be stored.
   */
  discard(error: Error, failed?: WriteBatch): void {
    const kinds = new Map<string, StoredKind>()
    const dropped = failed === undefined ? this.#split : [failed, ...this.#split]
    if (this.#failed !== undefined && this.#failed !== failed) dropped.push(this.#failed)
    for (const batch of dropped) for (const kind of batch.kinds) kinds.set(kind.kind, kind)
    for (const [name, kind] of this.#kinds) kinds.set(name, kind)
    this.#kinds = kinds
    // Sessions are not commits: what the dropped batches put or deleted is written still (what
    // was queued since is newer, and wins).
    for (const batch of dropped) {
      for (const put of batch.sessions.put) {
        const stored = this.#stored.get(put.id)
        if (stored !== undefined && !this.#sessionPuts.has(put.id)) {
          this.#sessionPuts.set(put.id, stored)
        }
      }
      for (const id of batch.sessions.delete) {
        if (!this.#stored.has(id)) this.#sessionDeletes.add(id)
      }
    }
    this.#split = []
    this.#commits = []
    this.#failed = undefined
    this.#retrying = false
    this.#retryDelay = RETRY_MIN_MS
    this.#failing = undefined
    const gone = new NeverDurable(
      `another ${this.backend.name} node wrote first: this write was not applied (${error.message})`,
      { cause: error },
    )
    this.#dropped = gone
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.revision <= this.#durable) return true
      waiter.reject(gone)
      return false
    })
    if (this.#pending) this.#schedule()
  }

  /** Fails the writers of a refused commit and queues an empty commit at its revision. */
  #refuse(commit: StoredCommit, cause: unknown): void {
    const error = refusedError(this.backend.name, commit.revision, cause)
    this.#log.warn('backend refused a commit; its writers get an error', {
      backend: this.backend.name,
      revision: commit.revision,
      error: error.message,
    })
    this.#split.unshift(emptyBatch(this.#nextId(), commit.revision, this.#node))
    this.#refused.set(commit.revision, error)
    if (this.#refused.size > REFUSED_KEPT) {
      this.#refused.delete(this.#refused.keys().next().value as number)
    }
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.revision !== commit.revision || !waiter.writer) return true
      waiter.reject(error)
      return false
    })
    try {
      this.#onRefused?.({ revision: commit.revision, error })
    } catch (failure) {
      // The engine's undo failing must not stop the commit path; the store stays right.
      this.#log.warn('undoing a refused commit in memory failed', {
        revision: commit.revision,
        error: failure instanceof Error ? failure.message : String(failure),
      })
    }
  }

  #nextId(): string {
    return `${this.#runId}-${++this.#batches}`
  }

  #takeBatch(): WriteBatch {
    const batch: WriteBatch = {
      id: this.#nextId(),
      commits: this.#commits,
      kinds: [...this.#kinds.values()],
      sessions: {
        put: [...this.#sessionPuts.values()].map((put) =>
          this.#unwritten.has(put.id) ? { ...put, fresh: true } : put,
        ),
        delete: [...this.#sessionDeletes],
      },
      answers: this.answers.take(this.#commits.at(-1)?.revision),
      ...(this.#node === undefined ? {} : { node: this.#node }),
    }
    this.#commits = []
    this.#kinds = new Map()
    this.#sessionPuts = new Map()
    this.#sessionDeletes = new Set()
    return batch
  }

  #acknowledge(revision: number): void {
    this.#durable = Math.max(this.#durable, revision)
    const still: Waiter[] = []
    for (const waiter of this.#waiters) {
      if (waiter.revision <= this.#durable) waiter.resolve()
      else still.push(waiter)
    }
    this.#waiters = still
    this.#onDurable?.()
  }

  #timeOutWaiters(): void {
    const now = Date.now()
    this.#waiters = this.#waiters.filter((waiter) => {
      if (now - waiter.since < this.#ackTimeoutMs) return true
      waiter.reject(
        new Unavailable(
          `the ${this.backend.name} backend has not made this write durable for ${this.#ackTimeoutMs} ms; ` +
            'it is retried and may still be applied',
        ),
      )
      return false
    })
  }
}

/** See `BackendRuntime.health`. */
export type BackendHealth =
  | { readonly backend: string; readonly ok: true }
  | { readonly backend: string; readonly ok: false; readonly since: number; readonly error: string }

/** What a layer above the engine stores beside the records (the server's `SessionStore`). */
export type StoredRows = Pick<
  BackendRuntime,
  'putSession' | 'deleteSession' | 'answers' | 'restoredSessions' | 'restoredAnswers'
>

function pidsOf(session: StoredSession): string[] {
  return [session.pid, ...session.children.map((child) => child.pid)]
}
