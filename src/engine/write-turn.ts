import { Closed, Unavailable } from '../errors/index.js'
import type { ChangesPage, ClusterSeam, LoadedState } from './ports/backend.js'
import type { BackendLog } from './storage/runtime.js'

/** What the turn needs of the engine it lets write. */
export interface TurnHost {
  readonly closed: boolean
  /** The revision of the last commit applied. */
  readonly revision: number
  /**
   * Everything staged is written: the runtime has nothing queued and nothing in flight. The
   * turn is given back only then, so that the next node's catch-up finds every commit of it.
   */
  readonly written: boolean
  /**
   * Applies `page` (the feed after this replica's revision, read with the lock) and reads on up
   * to its head if the page did not reach it (one read at a time); rejects on failure.
   */
  catchUp(page: ChangesPage, after: number): Promise<void>
  /**
   * Starts over from the store's snapshot, also from BELOW this replica's revision: the node's
   * unwritten commits are dropped (their writers were told), and its watchers get `reset`.
   */
  rewind(state: LoadedState): void
  /** The turn was given back: the node follows again (reads what other nodes write). */
  follow(): void
}

interface Waiter {
  readonly since: number
  /** System work (an exit): waits for as long as it takes, never times out. */
  readonly system: boolean
  resolve(leave: () => void): void
  reject(error: Error): void
}

type State = 'idle' | 'taking' | 'held' | 'giving' | 'rewinding'

/** Commits the lock's round trip brings along (the rest, if any, is read in pages after it). */
const CATCH_UP_PAGE = 1_000
const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 2_000

/**
 * A cluster node's **write turn** (docs/cluster.md, "The write turn"): the node writes only
 * while it holds the store's turn lock and has applied every commit stored before it. A turn:
 *
 *  1. Take.  `seam.lock` waits for the nodes ahead (PostgreSQL queues them), and answers the
 *            feed past this node's revision, read once the lock was granted (its head is the
 *            stored revision); `catchUp` applies what other nodes wrote up to that head.
 *  2. Open.  Every write that waited (and every queued system write: expiry, `$watch`
 *            records) now stages and applies, in this one macrotask, as on a single server:
 *            the runtime writes them as ONE batch at the end of it (group commit). A write
 *            that arrives later waits for the next turn, so that one busy node cannot keep the
 *            others waiting for ever.
 *  3. Give.  Once no write is staging and everything is written, `seam.unlock`; the node
 *            follows again, and takes the next turn when someone waits (system writes that
 *            came after the turn closed included).
 *
 * The lock is not what keeps the store right: a batch that does not follow the stored revision
 * is refused by the store (`Conflict`), so a node that lost its lock without knowing (its lock
 * connection died, another node wrote) can only lose its own unwritten commits. Then the
 * runtime fails their writers, and the turn `rewind`s the node to the store's snapshot.
 */
export class WriteTurn {
  readonly #seam: ClusterSeam
  readonly #host: TurnHost
  readonly #log: BackendLog
  /** How long a writer waits for a turn before it fails `Unavailable` (`durableTimeoutMs`). */
  readonly #timeoutMs: number
  #state: State = 'idle'
  /** True from the grant to the end of its macrotask: new writes may join this turn. */
  #open = false
  /** Writes staging now (between `enter` and `leave`): the turn is not given back meanwhile. */
  #holders = 0
  #waiting: Waiter[] = []
  /** System work for the next held moment (run in order, each as its own commit). */
  #builds: (() => void)[] = []
  #retryDelay = RETRY_MIN_MS
  #retryTimer: NodeJS.Timeout | undefined
  #timeoutTimer: NodeJS.Timeout | undefined
  /** Set by `diverged`: give the turn back and start over from the store's snapshot. */
  #diverged = false
  #failing: { readonly since: number; readonly error: string } | undefined
  #closed = false
  #turns = 0

  constructor(seam: ClusterSeam, host: TurnHost, options: { log: BackendLog; timeoutMs: number }) {
    this.#seam = seam
    this.#host = host
    this.#log = options.log
    this.#timeoutMs = options.timeoutMs
  }

  /**
   * True while this node holds the turn and may stage: not once the store refused its batch
   * (`diverged`), when whatever it staged would be decided on commits that were never stored.
   */
  get held(): boolean {
    return this.#state === 'held' && !this.#diverged
  }

  /** True while the node follows the store (holds no turn and is not taking one). */
  get following(): boolean {
    return this.#state === 'idle'
  }

  /** How many turns this node has taken (stats, tests). */
  get turns(): number {
    return this.#turns
  }

  /** Whether the turn can be taken: `/readyz` reports a node that cannot reach the lock. */
  get failing(): { readonly since: number; readonly error: string } | undefined {
    return this.#failing
  }

  /**
   * Resolves with `leave` once this node holds an open turn: the caller stages and applies its
   * commit, then calls `leave` (always, also when the commit threw). A user write waits at most
   * the turn timeout (`Unavailable`); a `system` one waits until it gets a turn or the node closes.
   */
  enter(system = false): Promise<() => void> {
    if (this.#closed) return Promise.reject(new Closed('the dataspace is closed'))
    if (this.#state === 'held' && this.#open && !this.#diverged) {
      return Promise.resolve(this.#hold())
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push({ since: Date.now(), system, resolve, reject })
      this.#armTimeout()
      this.#next()
    })
  }

  /**
   * Runs `build` (which stages and applies one system commit) now if this node holds an open
   * turn, else at the start of its next one: once a turn closed, system writes (a watch opened
   * or closed, an expiry) must not keep it, or a node with a stream of them would hold the
   * turn for ever. The caller makes sure no watcher is being told now.
   */
  whenHeld(build: () => void): void {
    if (this.#closed) return
    if (this.#state === 'held' && this.#open && !this.#diverged) {
      this.#run(build)
      return
    }
    this.#builds.push(build)
    this.#next()
  }

  /** The runtime wrote what was staged, or failed to: the turn may be given back now. */
  settled(): void {
    this.#maybeGive()
  }

  /**
   * The store refused this node's batch: another node wrote first (this node lost its turn
   * without knowing). The runtime has failed the writers of every unwritten commit; the node
   * gives the turn back and starts over from the store's snapshot.
   */
  diverged(error: Error): void {
    if (this.#diverged) return
    this.#log.warn(
      'another node wrote while this node held the write turn; starting over from the store',
      {
        error: error.message,
      },
    )
    this.#diverged = true
    this.#open = false
    this.#maybeGive()
  }

  /** Fails every waiting writer and gives the turn back (the engine closed). */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#timeoutTimer)
    const waiting = this.#waiting
    this.#waiting = []
    this.#builds = []
    for (const waiter of waiting) waiter.reject(new Closed('the dataspace is closed'))
    if (this.#state === 'held') {
      this.#state = 'giving'
      await this.#seam.unlock()
      this.#state = 'idle'
    }
  }

  #hold(): () => void {
    this.#holders++
    let left = false
    return () => {
      if (left) return
      left = true
      this.#holders--
      this.#maybeGive()
    }
  }

  #run(build: () => void): void {
    try {
      build()
    } catch (error) {
      // A system write that fails (memory budget) must not stop the turn of everyone else.
      this.#log.warn('a system write failed in the write turn', {
        error: error instanceof Error ? error.message : String(error),
      })
    }
  }

  /** Takes a turn when someone waits and none is being taken or held. */
  #next(): void {
    if (this.#closed || this.#host.closed) return
    if (this.#state !== 'idle' || this.#retryTimer !== undefined) return
    if (this.#waiting.length === 0 && this.#builds.length === 0) return
    this.#state = 'taking'
    this.#take().catch((error: unknown) => this.#failed(error))
  }

  async #take(): Promise<void> {
    let locked = false
    try {
      const after = this.#host.revision
      const page = await this.#seam.lock(this.#timeoutMs, after, CATCH_UP_PAGE)
      locked = true
      if (this.#closed) throw new Closed('the dataspace is closed')
      const head = page.head
      if (head < this.#host.revision) {
        // The store is behind this replica: its last commits were never stored (another node
        // took the lock while this one's batch failed). Start over from the store.
        throw new RewindNeeded()
      }
      await this.#host.catchUp(page, after)
      if (this.#host.revision !== head) {
        throw new Error(`internal: caught up to ${this.#host.revision}, the store is at ${head}`)
      }
    } catch (error) {
      if (error instanceof RewindNeeded) {
        this.#diverged = true
        await this.#rewind()
        return
      }
      if (locked) await this.#seam.unlock()
      this.#state = 'idle'
      // Closing: the connections are going, and what waited is failed by `close`.
      if (this.#closed || this.#host.closed) return
      this.#failed(error)
      return
    }
    this.#granted()
  }

  #granted(): void {
    if (this.#failing !== undefined) {
      this.#log.warn('this node takes the write turn again', {
        failingForMs: Date.now() - this.#failing.since,
      })
      this.#failing = undefined
    }
    this.#retryDelay = RETRY_MIN_MS
    this.#state = 'held'
    this.#turns++
    this.#open = true
    const builds = this.#builds
    this.#builds = []
    for (const build of builds) this.#run(build)
    const waiting = this.#waiting
    this.#waiting = []
    for (const waiter of waiting) waiter.resolve(this.#hold())
    // The turn closes to newcomers at the end of this macrotask: the writes granted now and
    // whatever they chain synchronously share its batch; later ones wait for the next turn.
    setImmediate(() => {
      this.#open = false
      this.#maybeGive()
    })
  }

  #maybeGive(): void {
    if (this.#state !== 'held' || this.#holders > 0 || this.#open) return
    if (this.#diverged) {
      this.#rewind().catch((error: unknown) => this.#failed(error))
      return
    }
    // Builds queued since the turn closed go in the next one (taken at once by `#next`).
    if (!this.#host.written) return
    this.#state = 'giving'
    // `unlock` never rejects (a dead lock connection has given the turn back already).
    this.#seam.unlock().then(
      () => {
        this.#state = 'idle'
        this.#host.follow()
        this.#next()
      },
      (error: unknown) => this.#failed(error),
    )
  }

  /** Gives the turn back and starts over from the store's snapshot (see `diverged`). */
  async #rewind(): Promise<void> {
    this.#state = 'rewinding'
    await this.#seam.unlock()
    for (let delay = RETRY_MIN_MS; !this.#closed && !this.#host.closed;) {
      try {
        const state = await this.#seam.snapshot()
        if (this.#closed || this.#host.closed) break
        this.#host.rewind(state)
        break
      } catch (error) {
        this.#log.warn('reading the store to start over failed; retrying', {
          error: error instanceof Error ? error.message : String(error),
          retryInMs: delay,
        })
        await new Promise((resolve) => setTimeout(resolve, delay))
        delay = Math.min(RETRY_MAX_MS, delay * 2)
      }
    }
    this.#diverged = false
    this.#state = 'idle'
    this.#host.follow()
    this.#next()
  }

  #failed(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    if (this.#failing === undefined) {
      this.#failing = { since: Date.now(), error: message }
      this.#log.warn('cannot take the write turn; retrying', { error: message })
    }
    this.#timeOutWaiters()
    const delay = this.#retryDelay
    this.#retryDelay = Math.min(RETRY_MAX_MS, delay * 2)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      // Nobody waits any more (they timed out): a turn with nothing in it still finds out
      // whether the store is back, so that the node does not report failing for ever.
      if (this.#waiting.length === 0 && this.#builds.length === 0) this.#builds.push(() => {})
      this.#next()
    }, delay)
  }

  /** Fails user writes that waited longer than the timeout (a timer, while any waits). */
  #armTimeout(): void {
    if (this.#timeoutTimer !== undefined) return
    this.#timeoutTimer = setTimeout(
      () => {
        this.#timeoutTimer = undefined
        this.#timeOutWaiters()
        if (this.#waiting.some((waiter) => !waiter.system)) this.#armTimeout()
      },
      Math.min(this.#timeoutMs, 1_000),
    )
    this.#timeoutTimer.unref()
  }

  #timeOutWaiters(): void {
    const now = Date.now()
    this.#waiting = this.#waiting.filter((waiter) => {
      if (waiter.system || now - waiter.since < this.#timeoutMs) return true
      const why = this.#failing === undefined ? '' : `: ${this.#failing.error}`
      waiter.reject(
        new Unavailable(
          `this node could not take the cluster's write turn within ${this.#timeoutMs} ms${why}; the write was not applied`,
        ),
      )
      return false
    })
  }
}

/** `#take` found the store behind this replica. */
class RewindNeeded extends Error {}
