import type {
  Backend,
  ChangesPage,
  FollowerSeam,
  LoadedState,
  StoredCommit,
  StoredKind,
  StoredSession,
  WriteBatch,
} from '../../src/engine/ports/backend.js'
import type { DataspaceRecord } from '../../src/model/types.js'
import type { Dataspace, LocalProcess } from '../../src/index.js'
import { Conflict, ProcessExited, Unavailable } from '../../src/errors/index.js'

/** A stored session with its lease, as PostgreSQL's `sessions` row (migration 10). */
interface LeasedSession {
  session: StoredSession
  node: string | undefined
  expiresAt: number
  /** A reaper's claim, until then. */
  reapAt?: number
}

/** One node's hold on the store's write turn (see `SharedStore.node`). */
interface TurnHolder {
  readonly node: number
}

/**
 * A store in memory that one writer and any number of followers open, as they would one
 * PostgreSQL schema: the writer's batches land in `records` and the feed, and ring every
 * follower's doorbell unless `muted`. Its feed can be trimmed (`trim`) and made to fail
 * (`failing`), to test what a follower does then.
 */
export class SharedStore {
  readonly records = new Map<string, DataspaceRecord>()
  readonly kinds = new Map<string, StoredKind>()
  readonly feed: StoredCommit[] = []
  revision = 0
  floor = 0
  /** Rings are not delivered (a lost doorbell): followers rely on their poll. */
  muted = false
  /** Feed reads fail with this error. */
  failing: Error | undefined
  /** While set, a node's `write` waits for this promise first (a slow or cut-off database). */
  writeGate: Promise<void> | undefined
  /** How long a node's `write` takes (a database's COMMIT). */
  writeDelayMs = 0
  /** How many turns nodes have taken. */
  turns = 0
  /**
   * Stored sessions with their leases, as PostgreSQL's write_batch keeps them for cluster
   * nodes (docs/cluster.md, "Sessions in the store"): `expire` runs a lease out now.
   */
  readonly sessions = new Map<string, LeasedSession>()
  /** How many renewal statements nodes sent. */
  renewals = 0
  /** Nodes (by name) whose renewals fail: cut off from the store. */
  readonly renewalsCutOff = new Set<string>()
  readonly #listeners = new Set<() => void>()
  #holder: TurnHolder | undefined
  #queue: { holder: TurnHolder; grant: () => void }[] = []
  #nodes = 0

  writer(): Backend {
    return {
      name: 'shared',
      capabilities: { durable: true, changes: true, query: false },
      open: () => Promise.resolve(this.#load()),
      write: (batch) => Promise.resolve(this.#write(batch)),
      changesSince: (revision, limit) => this.#read(revision, limit),
      close: () => Promise.resolve(),
    }
  }

  follower(): Backend {
    return {
      name: 'shared',
      capabilities: { durable: true, changes: true, query: false },
      open: () => Promise.resolve(this.#load()),
      write: () => Promise.reject(new Error('a follower never writes')),
      changesSince: (revision, limit) => this.#read(revision, limit),
      follower: this.#readerSeam(),
      close: () => Promise.resolve(),
    }
  }

  /**
   * A cluster node's backend (`cluster` seam): writes go through like the writer's, but only
   * in order (a batch that does not follow the stored revision is `Conflict`, as PostgreSQL's
   * `write_batch` refuses it), and the write turn is a FIFO lock over the nodes.
   */
  node(): Backend {
    const me: TurnHolder = { node: ++this.#nodes }
    return {
      name: 'shared',
      capabilities: { durable: true, changes: true, query: false },
      open: () => Promise.resolve(this.#load()),
      write: async (batch) => {
        if (this.writeGate !== undefined) await this.writeGate
        if (this.writeDelayMs > 0)
          await new Promise((resolve) => setTimeout(resolve, this.writeDelayMs))
        const first = batch.commits[0]
        if (first !== undefined && first.revision !== this.revision + 1) {
          throw new Conflict(
            `commit ${first.revision} does not follow the stored revision ${this.revision}`,
            this.revision,
          )
        }
        this.#write(batch)
      },
      changesSince: (revision, limit) => this.#read(revision, limit),
      cluster: {
        ...this.#readerSeam(),
        lock: async (timeoutMs, after, limit) => {
          await this.#lock(me, timeoutMs)
          return this.#read(after, limit)
        },
        unlock: () => {
          if (this.#holder === me) this.#pass()
          return Promise.resolve()
        },
        renewSessions: (node, ids) => {
          if (this.renewalsCutOff.has(node)) return Promise.reject(new Error(`${node} is cut off`))
          this.renewals++
          const now = Date.now()
          const renewed: string[] = []
          for (const [id, row] of this.sessions) {
            if (row.node !== node || row.expiresAt <= now || !ids.includes(id)) continue
            row.expiresAt = now + row.session.ttl
            renewed.push(id)
          }
          return Promise.resolve(renewed)
        },
        expireSession: (id, node) => {
          const row = this.sessions.get(id)
          if (row !== undefined && row.node === node && row.expiresAt > Date.now())
            row.expiresAt = Date.now()
          return Promise.resolve()
        },
        takeOverSession: (id, node, match) => {
          const now = Date.now()
          const row = this.sessions.get(id)
          if (
            row === undefined ||
            row.expiresAt <= now ||
            row.session.resumeTokenHash !== match.resumeTokenHash ||
            (match.principal !== undefined && row.session.principal !== match.principal)
          )
            return Promise.resolve(undefined)
          row.node = node
          row.expiresAt = now + row.session.ttl
          delete row.reapAt
          return Promise.resolve({ session: row.session, answers: [], revision: this.revision })
        },
        claimExpiredSessions: (limit, claimMs) => {
          const now = Date.now()
          const claimed = [...this.sessions.values()]
            .filter((row) => row.expiresAt <= now && (row.reapAt ?? 0) <= now)
            .sort((a, b) => a.expiresAt - b.expiresAt)
            .slice(0, limit)
          for (const row of claimed) row.reapAt = now + claimMs
          return Promise.resolve(claimed.map((row) => row.session))
        },
      },
      close: () => Promise.resolve(),
    }
  }

  /** Which node holds the write turn (1, 2, … in the order `node()` made them), or 0. */
  get holder(): number {
    return this.#holder?.node ?? 0
  }

  /**
   * Takes the turn from the node holding it, as a dropped lock connection does: that node
   * still thinks it holds it. Returns a function that gives it back (to whoever waits next).
   */
  steal(): () => void {
    const thief: TurnHolder = { node: -1 }
    this.#holder = thief
    return () => {
      if (this.#holder === thief) this.#pass()
    }
  }

  #lock(me: TurnHolder, timeoutMs: number): Promise<number> {
    if (this.#holder === undefined) {
      this.#holder = me
      this.turns++
      return Promise.resolve(this.revision)
    }
    return new Promise((resolve, reject) => {
      const entry = {
        holder: me,
        grant: () => {
          clearTimeout(timer)
          this.turns++
          resolve(this.revision)
        },
      }
      const timer = setTimeout(() => {
        this.#queue = this.#queue.filter((queued) => queued !== entry)
        reject(new Unavailable(`the write turn was not free within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#queue.push(entry)
    })
  }

  #pass(): void {
    const next = this.#queue.shift()
    this.#holder = next?.holder
    next?.grant()
  }

  /** What followers and nodes read beside the feed: the doorbell, the kinds, a snapshot. */
  #readerSeam(): FollowerSeam {
    return {
      listen: (ring) => {
        this.#listeners.add(ring)
        return Promise.resolve(() => {
          this.#listeners.delete(ring)
          return Promise.resolve()
        })
      },
      kinds: () => Promise.resolve([...this.kinds.values()]),
      snapshot: () => Promise.resolve(this.#load()),
    }
  }

  /** Drops the feed's commits up to `revision` (the floor rises to it). */
  trim(revision: number): void {
    this.floor = Math.max(this.floor, revision)
    while (this.feed.length > 0 && (this.feed[0] as StoredCommit).revision <= this.floor) {
      this.feed.shift()
    }
  }

  get listeners(): number {
    return this.#listeners.size
  }

  #load(): LoadedState {
    return {
      revision: this.revision,
      records: [...this.records.values()],
      kinds: [...this.kinds.values()],
      sessions: [],
    }
  }

  /** Runs the lease of session `id` out now (a node that stopped renewing it). */
  expire(id: string): void {
    const row = this.sessions.get(id)
    if (row !== undefined) row.expiresAt = Date.now()
  }

  /**
   * A cluster node's sessions, as write_batch (migration 10) treats them, in its order: puts,
   * then deletes, then the checks (a commit's session must be the node's with a live lease, or
   * deleted by this batch; a commit must not end a session whose lease is live), then the ended
   * sessions go. A failed check refuses the whole batch (ProcessExited) and changes nothing.
   */
  #writeSessions(batch: WriteBatch): void {
    const node = batch.node as string
    const now = Date.now()
    const rows = new Map([...this.sessions].map(([id, row]) => [id, { ...row }]))
    const live = (row: LeasedSession | undefined): boolean =>
      row !== undefined && row.node === node && row.expiresAt > now
    for (const put of batch.sessions.put) {
      const row = rows.get(put.id)
      const { fresh: _fresh, ...session } = put
      if (row === undefined) {
        if (put.fresh === true) rows.set(put.id, { session, node, expiresAt: now + put.ttl })
      } else if (live(row)) row.session = session
    }
    const gone = new Set<string>()
    for (const id of batch.sessions.delete) {
      if (!live(rows.get(id))) continue
      rows.delete(id)
      gone.add(id)
    }
    for (const commit of batch.commits) {
      if (
        commit.session !== undefined &&
        !gone.has(commit.session) &&
        !live(rows.get(commit.session))
      )
        throw new ProcessExited(`session ${commit.session} is not held by ${node}`, '')
      for (const id of commit.ends ?? []) {
        const row = rows.get(id)
        if (row !== undefined && row.expiresAt > now)
          throw new ProcessExited(`commit ${commit.revision} ends a live session`, '')
      }
    }
    for (const commit of batch.commits) for (const id of commit.ends ?? []) rows.delete(id)
    this.sessions.clear()
    for (const [id, row] of rows) this.sessions.set(id, row)
  }

  #write(batch: WriteBatch): void {
    if (batch.node !== undefined) this.#writeSessions(batch)
    for (const kind of batch.kinds) this.kinds.set(kind.kind, kind)
    // Stored as text, as a database would: what readers get back are new, unfrozen objects.
    const commits = JSON.parse(JSON.stringify(batch.commits)) as StoredCommit[]
    for (const commit of commits) {
      if (commit.revision !== this.revision + 1) throw new Error('revision gap')
      for (const change of commit.changes) {
        const key = JSON.stringify([change.kind, change.id])
        if (change.after === undefined) this.records.delete(key)
        else this.records.set(key, change.after)
      }
      this.feed.push(commit)
      this.revision = commit.revision
    }
    if (commits.length > 0 && !this.muted) {
      // After the write, like NOTIFY after COMMIT: never inside it.
      setImmediate(() => {
        for (const ring of this.#listeners) ring()
      })
    }
  }

  #read(revision: number, limit: number): Promise<ChangesPage> {
    if (this.failing !== undefined) return Promise.reject(this.failing)
    if (revision < this.floor) {
      return Promise.resolve({ trimmed: true, floor: this.floor, head: this.revision })
    }
    const commits = this.feed.filter((commit) => commit.revision > revision).slice(0, limit)
    return Promise.resolve({ trimmed: false, floor: this.floor, head: this.revision, commits })
  }
}

/**
 * Stores `proc` as a network session of its node `ds` (id `s-<pid>`, resume token hash `00`),
 * as the server does when a client opens one (docs/cluster.md, "Sessions in the store").
 */
export function storeSession(ds: Dataspace, proc: LocalProcess, ttl: number): StoredSession {
  const session: StoredSession = {
    id: `s-${proc.id}`,
    resumeTokenHash: '00',
    pid: proc.id,
    name: proc.name,
    ttl,
    children: [],
    lastChild: 0,
    principal: null,
  }
  if (ds.storage === undefined) throw new Error('this dataspace stores no sessions')
  ds.storage.putSession(session)
  return session
}
