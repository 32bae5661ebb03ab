import type { DataspaceApi, ExitReason, Process, ProcessFunction } from '../../src/index.js'
import type { AgentSpec } from './registry.js'

/** Options of {@link WorkerPool}. */
export interface PoolOptions {
  readonly ds: DataspaceApi
  /** How many workers run at once. */
  readonly size: number
  /** The agent that fills slot `slot` (a restart reuses the slot's spec, name included). */
  readonly spec: (slot: number) => AgentSpec
  /** The process function for a spec. */
  readonly worker: (spec: AgentSpec) => ProcessFunction
  /** Once aborted, crashed workers are no longer replaced. */
  readonly stop: AbortSignal
  /** Give up replacing crashed workers after this many restarts (default 10 000). */
  readonly maxRestarts?: number
  /** Called for every process the pool spawns, restarts included. */
  readonly onSpawn?: (proc: Process, spec: AgentSpec) => void
  /** Called once a worker has exited (its records are already gone). */
  readonly onExit?: (proc: Process, reason: ExitReason) => void
}

/**
 * A one-for-one supervisor, Erlang style: it spawns `size` workers and replaces each that
 * crashes, under the same agent name. A replacement can take the name at once because the dead
 * worker's `agent` record went in its exit commit, which happens before `exited` resolves — there
 * is no registry entry to clean up and no lock left poisoned by the crash.
 */
export class WorkerPool {
  /** Every process the pool has spawned, in order. */
  readonly spawned: Process[] = []
  readonly #options: PoolOptions
  readonly #exits: Promise<void>[] = []
  #live = 0
  #crashes = 0
  #restarts = 0
  #resolveExhausted!: () => void
  /** Resolves if every worker is down while the run still needs them (restarts used up). */
  readonly exhausted: Promise<void>

  constructor(options: PoolOptions) {
    this.#options = options
    this.exhausted = new Promise((resolve) => (this.#resolveExhausted = resolve))
  }

  /** Workers that exited with an error. */
  get crashes(): number {
    return this.#crashes
  }

  /** Replacements spawned for crashed workers. */
  get restarts(): number {
    return this.#restarts
  }

  /** Spawns the first `size` workers. */
  start(): this {
    for (let slot = 0; slot < this.#options.size; slot++) this.#spawn(slot)
    return this
  }

  /** Resolves once every worker the pool ever spawned has exited (call after aborting `stop`). */
  async stopped(): Promise<void> {
    // A crash may spawn a replacement while we wait: loop until no exit is pending.
    let seen = 0
    while (seen < this.#exits.length) {
      const batch = this.#exits.slice(seen)
      seen = this.#exits.length
      await Promise.all(batch)
    }
  }

  #spawn(slot: number): void {
    const { ds, spec: specOf, worker, onSpawn } = this.#options
    const spec = specOf(slot)
    const proc = ds.spawn(spec.name, worker(spec))
    this.spawned.push(proc)
    this.#live++
    onSpawn?.(proc, spec)
    this.#exits.push(proc.exited.then((reason) => this.#exited(slot, proc, reason)))
  }

  #exited(slot: number, proc: Process, reason: ExitReason): void {
    this.#live--
    this.#options.onExit?.(proc, reason)
    if (typeof reason === 'string') return // normal, shutdown, aborted: not a crash
    this.#crashes++
    const { stop, maxRestarts = 10_000 } = this.#options
    if (!stop.aborted && this.#restarts < maxRestarts) {
      this.#restarts++
      this.#spawn(slot)
    } else if (this.#live === 0 && !stop.aborted) {
      this.#resolveExhausted()
    }
  }
}
