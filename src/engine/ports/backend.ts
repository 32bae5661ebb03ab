import type { DataspaceRecord, RetractReason, Selector } from '../../model/types.js'

/**
 * The backend seam (docs/backends.md; its place in the layers: docs/design.md): where commits become durable and ordered. The engine is an
 * in-memory replica: it assigns revisions, applies each commit in memory, and hands the commits
 * to its backend, which must make a whole batch durable atomically before the engine
 * acknowledges any write in it. Kysely-style: a backend is small and does only I/O; the runtime
 * wrapper (`openBackend`) owns init-once, "closed" errors and logging.
 */
export interface Backend {
  /** `memory`, `sqlite`, `postgres`: shown in logs and metrics. */
  readonly name: string
  readonly capabilities: BackendCapabilities
  /**
   * Connects, creates or migrates the storage, and loads the current state. Called once. The
   * records of non-resident kinds (`StoredKind.resident === false`) are not loaded: only how many
   * each owner has (`LoadedState.owned`); the engine reads them through `query` when it needs them.
   */
  open(): Promise<LoadedState>
  /**
   * Makes one batch durable, atomically: every commit in it, or none. Commits arrive in revision
   * order, gap-free; a batch may hold many (group commit: everything of one turn). Resolves once
   * the batch would survive a crash of this process.
   */
  write(batch: WriteBatch): Promise<void>
  /**
   * Whether `error`, thrown by `write`, means the database refuses something in the batch (a
   * value it cannot store, a constraint it enforces), so that writing the same batch again can
   * never succeed. Then the runtime isolates the refused commit (bisecting the batch), stores an
   * empty commit at its revision and fails its writers; everything else of the batch is written.
   * `false` (a lost connection, a busy or full database, a timeout) keeps retrying the batch.
   * Absent: only `InvalidArgument`, `TooLarge` and `SchemaViolation` thrown by `write` count as
   * refusals (see `refusesContent` in refusal.ts).
   */
  refusesContent?(error: unknown): boolean
  /**
   * The commit feed (capability `changes`): every commit after `revision`, oldest first, at most
   * `limit` of them (a whole number of revisions), empty commits included (a refused commit is
   * stored empty), so a page's revisions are consecutive. A feed may be trimmed: when commits
   * after `revision` are gone (`revision` is below the feed's floor), the answer is
   * `{ trimmed: true }` and never a page with a gap — the caller starts over from a snapshot
   * (a watcher gets `reset`). See `ChangesPage` and docs/backends.md ("The feed").
   */
  changesSince?(revision: number, limit: number): Promise<ChangesPage>
  /**
   * Selector pushdown (capability `query`): the records of `kind` matching `selector`, in id
   * order, after the id `after` (keyset pagination), at most `limit`. Served from the backend's
   * native indexes (expression indexes on declared fields, GIN on labels); the engine re-applies
   * the selector in memory, so a backend may return a superset but never miss a match. The rows
   * reflect every write whose `write` had resolved before `query` was called. A backend with
   * this capability must honour residency in `open` (docs/backends.md, "Non-resident kinds").
   */
  query?(kind: string, selector: Selector, page: QueryPage): Promise<DataspaceRecord[]>
  /** How the backend would run that query: the index it chose (capability `query`). */
  explainQuery?(kind: string, selector: Selector): Promise<BackendPlan>
  /**
   * The servers sharing this backend (capability of a store several servers can open at once:
   * PostgreSQL). Absent on memory and SQLite, which one server owns: the server then reports
   * itself as the only member (docs/cluster.md, "Membership").
   */
  readonly membership?: Membership
  /**
   * Present when the backend was opened as a **follower** of a store another server writes
   * (PostgreSQL `follow: true`; docs/cluster.md, "Followers"): the engine never writes through
   * it — every write is refused — and instead applies the writer's commits from `changesSince`,
   * in revision order, when the doorbell rings and on a poll. `open` then loads no sessions.
   */
  readonly follower?: FollowerSeam
  /**
   * Present when the backend was opened as a **node of a cluster** (PostgreSQL `cluster: true`;
   * docs/cluster.md, "The write turn"): several engines write the one store. A node writes only
   * while it holds the store's **write turn** (`lock` … `unlock`), after applying every commit
   * the store holds that it has not (the feed, as a follower does); between turns it follows.
   * `write` refuses a batch whose first revision does not follow the stored one with
   * `Conflict` (another node wrote first): the node then starts over from a snapshot.
   * `open` loads no sessions (each belongs to the node that holds its lease) and a node reaps
   * nobody at start-up: sessions whose lease ran out are reaped by any node (`expiredSessions`).
   */
  readonly cluster?: ClusterSeam
  /** Closes connections and files. Called once, after the last `write` settled. */
  close(): Promise<void>
}

/**
 * Node membership over a shared backend: each server registers itself, renews its row on a
 * heartbeat, and removes it when it stops. Timestamps are the DATABASE's clock, so nodes whose
 * clocks disagree still agree on who is live. The backend only does I/O: the server drives the
 * heartbeat (src/server/membership.ts).
 */
export interface Membership {
  /** Registers `node` (or renews its row, keeping nothing of an older one with its id). */
  join(node: NodeRegistration): Promise<void>
  /**
   * Renews `node`'s heartbeat in one statement, and deletes a bounded number of rows that stopped
   * beating long ago (any node prunes). Registers `node` again if its row was pruned meanwhile.
   */
  heartbeat(node: NodeRegistration): Promise<void>
  /** Every registered node, live or not (yet) pruned, oldest first. */
  members(): Promise<NodeInfo[]>
  /** Removes the row of the node `id` (a graceful stop). */
  leave(id: string): Promise<void>
}

/**
 * What a follower needs beyond the feed: the writer's doorbell, and the kinds as declared now
 * (declarations are not commits: a follower reads them when a commit names a kind it does not
 * know).
 */
export interface FollowerSeam {
  /**
   * Calls `ring` after a writer committed. A hint only: a ring may be lost (a dropped
   * connection) or spurious, so the follower also polls. Resolves once listening, with a
   * function that stops it. Connection failures are retried inside, never thrown to `ring`.
   */
  listen(ring: () => void): Promise<() => Promise<void>>
  /** Every kind declared in the store now. */
  kinds(): Promise<StoredKind[]>
  /**
   * The store's current state, as `open` loads it (one snapshot; no sessions): a follower that
   * fell below the feed's floor starts over from it.
   */
  snapshot(): Promise<LoadedState>
}

/**
 * What a cluster node needs beyond the follower's seam: the store's write turn, a lock one node
 * holds at a time (PostgreSQL: an advisory lock on a connection of its own). The turn is an
 * optimisation of who writes next, not the guard of correctness: `write` itself refuses a batch
 * that does not follow the stored revision, so a node that lost its turn without knowing (its
 * lock connection dropped) can never store a commit over another node's.
 */
export interface ClusterSeam extends FollowerSeam {
  /**
   * Waits until this node holds the write turn (nodes wait in turn), then resolves with the
   * feed after `after` as `changesSince(after, limit)` would answer it, read once the turn is
   * held (in the same round trip on PostgreSQL): its `head` is the stored revision, and every
   * commit up to it is in the feed. Rejects when the store cannot be reached or `timeoutMs`
   * passes first (the caller retries).
   */
  lock(timeoutMs: number, after: number, limit: number): Promise<ChangesPage>
  /** Gives the turn back. Never rejects: a turn whose connection died is given back already. */
  unlock(): Promise<void>
  /**
   * Renews the lease of every stored session among `ids` (those the node serves) that `node`
   * holds and whose lease has not run out, in one statement, on the store's clock (docs/cluster.md, "Sessions in the store"), and answers
   * their ids: a session of `node` that is not among them was reaped (its lease ran out) or is
   * held by another node now. A lease that ran out is never renewed. Never runs during a write
   * turn (a reaper's check and its write see the same leases).
   */
  renewSessions(node: string, ids: readonly string[]): Promise<string[]>
  /**
   * Runs out now the lease of the stored session `id`, if `node` holds it (its client went
   * away from that node): a reaper retracts what it owned, a takeover no longer finds it.
   */
  expireSession(id: string, node: string): Promise<void>
  /**
   * Claims at most `limit` stored sessions whose lease has run out (any node's), the longest
   * gone first, for this node to reap: a session claimed by a node is not answered to another
   * for `claimMs` (nodes reaping at once skip each other's rows), after which a claim whose
   * node did not reap it (it died) lapses.
   */
  claimExpiredSessions(limit: number, claimMs: number): Promise<StoredSession[]>
  /**
   * Moves the stored session `id` to `node` (its client resumed it there: docs/cluster.md,
   * "Resuming on another node"), with a fresh lease, if its lease is live and it matches
   * `match` (the hash of the resume token the client presented; the token name that opened it,
   * when given). Answers the session, its stored answers (oldest first) and the stored revision
   * then, or `undefined` when there is no such live session. The node that held it finds it
   * gone at its next renewal, and the store refuses its writes for it from now on.
   */
  takeOverSession(id: string, node: string, match: SessionMatch): Promise<TakenSession | undefined>
}

/** What a client must present to resume a stored session (`ClusterSeam.takeOverSession`). */
export interface SessionMatch {
  /** sha256 (hex) of the resume token the client presented. */
  readonly resumeTokenHash: string
  /** The token name the client authenticated as (auth on): it must be the one that opened it. */
  readonly principal?: string
}

/** A session a node took over: what it needs to serve it. */
export interface TakenSession {
  readonly session: StoredSession
  /** The stored answers of its write calls, oldest first. */
  readonly answers: readonly StoredAnswer[]
  /** The stored revision when it was taken: the node serves it once it has applied that. */
  readonly revision: number
}

/** What a server registers about itself. */
export interface NodeRegistration {
  /** Unique per server start. */
  readonly id: string
  /** The URL it listens on (`http://host:port`). */
  readonly address: string
  readonly host: string
  readonly pid: number
  /** Its heartbeat interval: a row is live for 3 of them, and pruned after 10. */
  readonly heartbeatMs: number
}

/** A registered node as `members` reports it. */
export interface NodeInfo {
  readonly id: string
  readonly address: string
  readonly host: string
  readonly pid: number
  readonly heartbeatMs: number
  /** When it registered, ms since the epoch (database clock). */
  readonly startedAt: number
  /** Its last heartbeat, ms since the epoch (database clock). */
  readonly heartbeatAt: number
  /** Heartbeat within the last 3 intervals of its own, by the database clock. */
  readonly live: boolean
}

export interface BackendCapabilities {
  /** Survives a process crash (memory: false). */
  readonly durable: boolean
  /** Keeps a feed of commits that `changesSince` can read. */
  readonly changes: boolean
  /** Answers `query` / `explainQuery` from its own indexes. */
  readonly query: boolean
}

export interface QueryPage {
  readonly limit: number
  /** Only ids greater than this (the last id of the previous page). */
  readonly after?: string
}

export interface BackendPlan {
  /** The native index used (e.g. `ds_idx_api_route_path`), or `null` for a scan. */
  readonly index: string | null
  /** The backend's own plan text (EXPLAIN output), for humans. */
  readonly detail: string
  /** The planner's estimate of the rows it returns, when it gives one. */
  readonly rows?: number
}

/** What `open` loads: the state at `revision`. */
export interface LoadedState {
  /**
   * Names the store (a backend several servers open: PostgreSQL's schema and when it was
   * created): every server that opens it gets the same, another store (or the same schema
   * created again) another. Cluster nodes share their watch histories' epoch through it.
   */
  readonly store?: string
  /** The revision of the last durable commit (0 for a new store). */
  readonly revision: number
  /** Every stored record of a resident kind, any order. */
  readonly records: readonly DataspaceRecord[]
  /**
   * For each non-resident kind, how many records each owner holds (ownerless records are not
   * counted): the engine reaps dead owners and counts per-session records without loading them.
   * Absent or empty when no kind is non-resident.
   */
  readonly owned?: readonly OwnedCount[]
  /** Declared kinds (fields and indexes), so that indexes survive a restart. */
  readonly kinds: readonly StoredKind[]
  /** Network sessions that were alive when the last server stopped. */
  readonly sessions: readonly StoredSession[]
  /** The stored answers of those sessions' writes, oldest (lowest revision) first. */
  readonly answers?: readonly StoredAnswer[]
}

/**
 * The answer to a session's write call, stored in the batch of the commit it answers: a call
 * re-sent after a restart is answered with it instead of being applied again (docs/backends.md, "Answers").
 */
export interface StoredAnswer {
  readonly session: string
  /** The call id the client gave the write. */
  readonly call: number
  /** The revision of the commit it answers. */
  readonly revision: number
  /** The answer's value, as JSON text. */
  readonly value: string
}

/** Which stored answer: a session's call id. */
export interface AnswerKey {
  readonly session: string
  readonly call: number
}

export interface StoredKind {
  readonly kind: string
  readonly fields?: readonly string[]
  readonly indexes: readonly string[]
  /**
   * `false`: the kind's records live only in the backend (docs/backends.md, "Non-resident kinds"), and `open`
   * leaves them out of `records`. Absent means resident.
   */
  readonly resident?: boolean
}

export interface OwnedCount {
  readonly kind: string
  readonly owner: string
  readonly count: number
}

/** A network session as the server persists it: enough to resume it after a restart. */
export interface StoredSession {
  readonly id: string
  /** sha256 of the resume token (hex): the token itself is never stored. */
  readonly resumeTokenHash: string
  readonly pid: string
  readonly name: string
  readonly ttl: number
  /** Child pids in use (`<pid>.<n>`), with their names; `lastChild` is the highest `n` issued. */
  readonly children: readonly { readonly pid: string; readonly name: string }[]
  readonly lastChild: number
  /** The token name (auth) that opened it, or null. */
  readonly principal: string | null
  /**
   * Set by the runtime on a cluster node's first put of a session (in a batch with `node`):
   * the store creates the row, held by that node. A put without it only updates a row the node
   * still holds, so a session the reaper removed is never created again.
   */
  readonly fresh?: boolean
}

/** One record's new state in a commit: the record, or `undefined` when it was removed. */
export interface StoredChange {
  readonly kind: string
  readonly id: string
  readonly after: DataspaceRecord | undefined
  /**
   * Why it was removed (`after` undefined): kept in the feed so that a follower's watchers see
   * the same `retract` events as the writer's. Absent in feeds written before it was stored
   * (read as `retract`).
   */
  readonly reason?: RetractReason
}

export interface StoredCommit {
  readonly revision: number
  readonly changes: readonly StoredChange[]
  /**
   * A cluster node's (a batch with `node`): the stored session whose process made this commit.
   * The store writes it only while that session's lease is live and held by the batch's node;
   * otherwise it refuses the commit with `ProcessExited` (the session was lost: a reaper took
   * it), which the runtime isolates like any refused commit.
   */
  readonly session?: string
  /**
   * The stored sessions whose end this commit is (a reaper's owner-exit commit): it is written
   * only if none of them still has a live lease (else refused with `ProcessExited`), and their
   * rows and answers are deleted with it.
   */
  readonly ends?: readonly string[]
}

/**
 * What `changesSince(revision, limit)` answers. `floor` is the feed's trim point: every commit
 * after it is in the feed, so a caller that has applied everything up to a revision at or
 * above it can resume from the feed; below it commits are gone. `head` is the stored revision
 * when the page was read (a page shorter than `head - revision` means: read again). Both come
 * from the same snapshot as the commits.
 */
export type ChangesPage = FeedPage | FeedTrimmed

/** `revision >= floor`: the commits after `revision`, consecutive, up to `limit` or `head`. */
export interface FeedPage {
  readonly trimmed: false
  readonly floor: number
  readonly head: number
  readonly commits: readonly StoredCommit[]
}

/**
 * `revision < floor`: commits after `revision` were trimmed, so no page could be complete.
 * The caller must start over from the current state (snapshot, or `open`'s load), then read
 * the feed from that state's revision.
 */
export interface FeedTrimmed {
  readonly trimmed: true
  readonly floor: number
  readonly head: number
}

/** What one `write` makes durable, all or nothing. */
export interface WriteBatch {
  /**
   * Unique per batch and the same on every retry of it: `<run>-<n>`, where `<run>` (everything
   * before the last `-`) names the writer's run (BackendRuntime's run id) and `n` counts its
   * batches. A run writes one batch at a time and only ever retries its newest. When a write's
   * COMMIT succeeded but its answer was lost (a dropped connection), the runtime sends the same
   * batch again: a backend whose last stored batch has this id and ends at this batch's last
   * revision reports success without writing. A cluster backend (`cluster`) must recognise it
   * too after other nodes wrote: PostgreSQL keeps each run's newest stored batch and its last
   * revision (its `batches` table). Any other batch at an old revision is a second writer (or
   * another node that wrote first), and is refused.
   */
  readonly id: string
  /**
   * The cluster node writing (absent on a single server): its sessions' rows name it, a put
   * or delete of a session touches only a row it holds with a live lease, and commits with
   * `session` or `ends` are checked against the leases.
   */
  readonly node?: string
  readonly commits: readonly StoredCommit[]
  /** Kind declarations made since the last batch (the latest declaration of a kind wins). */
  readonly kinds: readonly StoredKind[]
  /** Sessions opened or changed (put), and ended (deleted by id). */
  readonly sessions: { readonly put: readonly StoredSession[]; readonly delete: readonly string[] }
  /**
   * Answers of write calls (each with a commit of this batch), and answers to forget (a session
   * remembers its latest 1024). A session deleted here loses its answers too.
   */
  readonly answers?: {
    readonly put: readonly StoredAnswer[]
    readonly delete: readonly AnswerKey[]
  }
}

/**
 * A parameterized statement, as the SQL backends' pushdown builds it: selector values only ever
 * travel in `values`, never in `text`.
 */
export interface SqlQuery {
  readonly text: string
  readonly values: readonly unknown[]
}
