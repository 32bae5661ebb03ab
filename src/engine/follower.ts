import type {
  ChangesPage,
  FeedPage,
  FollowerSeam,
  LoadedState,
  StoredCommit,
  StoredKind,
} from './ports/backend.js'
import type { BackendLog } from './storage/runtime.js'

/** The least time between the starts of two feed reads (see `Follower.wake`). */
const READ_GAP_MS = 5

/** What the follower needs of the engine it feeds. */
export interface FollowerHost {
  /** The last revision applied. */
  readonly revision: number
  readonly closed: boolean
  /**
   * False while a cluster node takes or holds its write turn: then only the turn reads the
   * feed (`catchUpTo`), and the node's own commits must not meet a replicated one.
   */
  readonly following: boolean
  /** Whether this replica knows `kind` (has a store for it). */
  knowsKind(kind: string): boolean
  /** Re-declares the kinds the store holds (a commit named one this replica does not know). */
  restoreKinds(kinds: readonly StoredKind[]): void
  /** Applies a commit the writer made: it is the next revision. */
  applyReplicated(commit: StoredCommit): void
  /** Starts over from the store's snapshot (watches get `reset`). */
  resync(state: LoadedState): void
}

export interface FollowerOptions {
  /** How often the feed is read when no doorbell rang (a doorbell may be lost). */
  readonly pollMs: number
  /** Commits per feed read. */
  readonly pageSize: number
  readonly log: BackendLog
}

/** Whether the follower keeps up: `/readyz` reports a failing one. */
export type FollowerHealth =
  { readonly ok: true } | { readonly ok: false; readonly since: number; readonly error: string }

/**
 * A follower (docs/cluster.md, "Followers"): keeps a replica engine equal to a store another
 * server writes, by applying the store's feed in revision order. It reads the feed when the
 * writer's doorbell rings and every `pollMs` in case a ring was lost; one read runs at a time,
 * and a ring during a read makes it read again at once, so no commit waits for the next poll.
 * A failed read is logged (at most every 30 s) and retried on the next ring or poll.
 */
export class Follower {
  readonly #seam: FollowerSeam
  readonly #feed: (revision: number, limit: number) => Promise<ChangesPage>
  readonly #host: FollowerHost
  readonly #options: FollowerOptions
  #timer: NodeJS.Timeout | undefined
  #unlisten: (() => Promise<void>) | undefined
  #reading: Promise<void> | undefined
  #again = false
  #started: Promise<void> | undefined
  #stopped = false
  #stopping: Promise<void> | undefined
  #failing: { since: number; error: string; logged: number } | undefined

  constructor(
    seam: FollowerSeam,
    feed: (revision: number, limit: number) => Promise<ChangesPage>,
    host: FollowerHost,
    options: FollowerOptions,
  ) {
    this.#seam = seam
    this.#feed = feed
    this.#host = host
    this.#options = options
  }

  /**
   * Starts listening and polling, and reads the feed once; rejects if the doorbell cannot
   * listen. Runs once: a second call gets the first one's promise. A first read that fails
   * does not reject: the follower is then reported failing and retries on every poll.
   */
  start(): Promise<void> {
    this.#started ??= this.#start()
    return this.#started
  }

  async #start(): Promise<void> {
    const unlisten = await this.#seam.listen(() => this.wake())
    // Stopped while the doorbell connected: nothing may be left running.
    if (this.#stopped) return unlisten()
    this.#unlisten = unlisten
    // Not unref'd: like the store's connections, an open follower keeps its program alive
    // until it is closed (its watchers wait for what the writer does).
    this.#timer = setInterval(() => this.wake(), this.#options.pollMs)
    this.wake()
    await this.#reading
  }

  get health(): FollowerHealth {
    const failing = this.#failing
    return failing === undefined
      ? { ok: true }
      : { ok: false, since: failing.since, error: failing.error }
  }

  /**
   * Reads the feed now, or once the read in flight is done. Reads start at most every
   * `READ_GAP_MS`: under a stream of writes each ring would otherwise cost a read of a commit
   * or two (measured: a follower then costs the writer's machine a third of a core, and the
   * database half a core more, docs/performance.md); waiting a few ms lets one read carry all
   * of them. An idle follower still reads at once.
   */
  wake(): void {
    if (this.#stopped || !this.#host.following) return
    if (this.#reading !== undefined) {
      this.#again = true
      return
    }
    const started = Date.now()
    this.#reading = this.#catchUp()
      .then(async () => {
        const wait = started + READ_GAP_MS - Date.now()
        if (this.#again && wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      })
      .finally(() => {
        this.#reading = undefined
        if (this.#again) {
          this.#again = false
          this.wake()
        }
      })
  }

  /** Stops for good; waits for the read in flight. Once: a second call gets the first's promise. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    await this.#unlisten?.().catch(() => undefined)
    await this.#reading
  }

  /**
   * A cluster node's write turn catching up (write-turn.ts): waits for the read in flight, then
   * applies `page` (the feed after `after`, read with the turn's lock) and reads on to its head.
   * Rejects when the feed cannot be read (the turn gives up and retries); runs also while the
   * background reads are paused (`following` false).
   */
  async catchUpTo(page: ChangesPage, after: number): Promise<void> {
    while (this.#reading !== undefined) await this.#reading
    if (this.#host.revision >= page.head) return
    const read = this.#applyThenRead(page, after)
    this.#reading = read.then(
      () => undefined,
      () => undefined,
    )
    try {
      await read
    } finally {
      this.#reading = undefined
    }
  }

  async #applyThenRead(page: ChangesPage, after: number): Promise<void> {
    // A page read from a revision this replica has passed meanwhile is as good: its commits up
    // to this revision are skipped. One read from below the floor starts over, as a read would.
    if (page.trimmed || after > this.#host.revision) return this.#readToHead()
    if (!(await this.#applyPage(page))) return
    if (this.#host.revision < page.head) await this.#readToHead()
  }

  async #catchUp(): Promise<void> {
    try {
      await this.#readToHead()
      if (this.#failing !== undefined) {
        this.#options.log.warn('follower reads the feed again', {
          failingForMs: Date.now() - this.#failing.since,
        })
        this.#failing = undefined
      }
    } catch (error) {
      this.#failed(error)
    }
  }

  /** Applies the feed from this replica's revision to the store's head. */
  async #readToHead(): Promise<void> {
    for (;;) {
      if (this.#stopped || this.#host.closed) return
      const page = await this.#feed(this.#host.revision, this.#options.pageSize)
      if (this.#stopped || this.#host.closed) return
      if (page.trimmed) {
        await this.#startOver(page.floor)
        continue
      }
      if (!(await this.#applyPage(page))) return
      if (page.commits.length === 0 || this.#host.revision >= page.head) break
    }
  }

  /** Applies a page's commits this replica lacks; false when it stopped meanwhile. */
  async #applyPage(page: FeedPage): Promise<boolean> {
    await this.#learnKinds(page.commits)
    if (this.#stopped || this.#host.closed) return false
    for (const commit of page.commits) {
      // A commit this replica applied meanwhile (two reads of one page) is skipped.
      if (commit.revision <= this.#host.revision) continue
      this.#host.applyReplicated(commit)
    }
    return true
  }

  /** Declarations are not in the feed: a commit naming an unknown kind reloads them first. */
  async #learnKinds(commits: readonly StoredCommit[]): Promise<void> {
    const unknown = commits.some((commit) =>
      commit.changes.some((change) => !this.#host.knowsKind(change.kind)),
    )
    if (unknown) this.#host.restoreKinds(await this.#seam.kinds())
  }

  /**
   * The commits after this replica's revision were trimmed (it could not read the feed for
   * longer than the feed keeps them): it starts over from the store's snapshot, and its
   * watchers get `reset` + a snapshot — never a gap.
   */
  async #startOver(floor: number): Promise<void> {
    this.#options.log.warn('follower fell below the feed’s floor; starting over from a snapshot', {
      revision: this.#host.revision,
      floor,
    })
    const state = await this.#seam.snapshot()
    if (this.#stopped || this.#host.closed) return
    this.#host.resync(state)
  }

  #failed(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    const now = Date.now()
    if (this.#failing === undefined) {
      this.#failing = { since: now, error: message, logged: now }
      this.#options.log.warn('follower cannot read the feed; retrying', { error: message })
    } else if (now - this.#failing.logged >= 30_000) {
      this.#failing.logged = now
      this.#options.log.warn('follower still cannot read the feed; retrying', {
        error: message,
        failingForMs: now - this.#failing.since,
      })
    }
  }
}
