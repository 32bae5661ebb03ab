import type {
  Backend,
  ChangesPage,
  LoadedState,
  StoredCommit,
  StoredKind,
  WriteBatch,
} from '../../src/engine/ports/backend.js'
import type { DataspaceRecord } from '../../src/model/types.js'

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
  readonly #listeners = new Set<() => void>()

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
      follower: {
        listen: (ring) => {
          this.#listeners.add(ring)
          return Promise.resolve(() => {
            this.#listeners.delete(ring)
            return Promise.resolve()
          })
        },
        kinds: () => Promise.resolve([...this.kinds.values()]),
        snapshot: () => Promise.resolve(this.#load()),
      },
      close: () => Promise.resolve(),
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

  #write(batch: WriteBatch): void {
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
