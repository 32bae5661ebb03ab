import { DataspaceError, InvalidArgument, ProcessExited } from '../../errors/index.js'
import type { Backend, StoredCommit, WriteBatch } from '../ports/backend.js'

/**
 * Whether `backend` failed a `write` because it refuses something in the batch (a value it
 * cannot store, a constraint): writing the same batch again can never succeed, so the runtime
 * isolates the refused commits instead of retrying (docs/backends.md, "Refused writes"). A backend's
 * own `refusesContent` knows its errors best; any backend may also throw `InvalidArgument`,
 * `TooLarge` or `SchemaViolation` for content it checks itself, and `ProcessExited` for a commit
 * of a session it no longer gives the writing node. Everything else (a lost
 * connection, a busy or full database, a timeout, a second writer) is retried: refusing a good
 * write because the disk was full would be worse than waiting.
 */
export function refusesContent(backend: Backend, error: unknown): boolean {
  if (
    error instanceof DataspaceError &&
    (error.code === 'InvalidArgument' ||
      error.code === 'TooLarge' ||
      error.code === 'SchemaViolation' ||
      // A cluster node's commit whose session the store no longer gives it (StoredCommit.session).
      error.code === 'ProcessExited')
  ) {
    return true
  }
  try {
    return backend.refusesContent?.(error) === true
  } catch {
    // A classifier that throws must not end the commit path: retrying is the old behaviour.
    return false
  }
}

/**
 * Splits a refused batch in two, to find what the backend refuses (bisection: a batch of N
 * commits with one refused costs about 2·log₂N writes, and the good halves stay batched).
 * Kind declarations and session puts go first, apart from the commits, and session deletes
 * after them; commits are halved in
 * revision order, so the halves are written in order and revisions stay gap-free. Returns `[]`
 * when the batch cannot be split: one commit, or one kind or session.
 */
export function splitBatch(batch: WriteBatch, nextId: () => string): WriteBatch[] {
  const { commits, kinds, sessions } = batch
  const forgotten = batch.answers?.delete ?? []
  const items = kinds.length + sessions.put.length + sessions.delete.length + forgotten.length
  let forget = forgotten
  const part = (
    partCommits: readonly StoredCommit[],
    partKinds: WriteBatch['kinds'] = [],
    put: WriteBatch['sessions']['put'] = [],
    gone: WriteBatch['sessions']['delete'] = [],
  ): WriteBatch => {
    // An answer travels with the commit it answers, so a refused commit's answer is never
    // stored (a re-sent call must not be told it succeeded); forgotten answers go with the first part.
    const revisions = new Set(partCommits.map((commit) => commit.revision))
    const answered = batch.answers?.put.filter((answer) => revisions.has(answer.revision)) ?? []
    const answers =
      answered.length + forget.length === 0 ? {} : { answers: { put: answered, delete: forget } }
    forget = []
    return {
      id: nextId(),
      ...(batch.node === undefined ? {} : { node: batch.node }),
      commits: partCommits,
      kinds: partKinds,
      sessions: { put, delete: gone },
      ...answers,
    }
  }
  if (commits.length > 0 && items > 0) {
    // Kinds and puts before the commits (a commit may be a new session's, fenced on its row),
    // deleted sessions after them (an ended session's last commits are still its own).
    const first = items - sessions.delete.length > 0 ? [part([], kinds, sessions.put)] : []
    const last = sessions.delete.length > 0 ? [part([], [], [], sessions.delete)] : []
    return [...first, part(commits), ...last]
  }
  if (commits.length > 1) {
    const half = Math.ceil(commits.length / 2)
    return [part(commits.slice(0, half)), part(commits.slice(half))]
  }
  if (kinds.length + sessions.put.length + sessions.delete.length > 1) {
    // Kinds, then session puts, then deletes, cut in the middle of that list.
    const all = [
      ...kinds.map((kind) => ({ kind })),
      ...sessions.put.map((put) => ({ put })),
      ...sessions.delete.map((gone) => ({ gone })),
    ]
    const half = Math.ceil(all.length / 2)
    return [all.slice(0, half), all.slice(half)].map((slice) =>
      part(
        [],
        slice.flatMap((item) => ('kind' in item ? [item.kind] : [])),
        slice.flatMap((item) => ('put' in item ? [item.put] : [])),
        slice.flatMap((item) => ('gone' in item ? [item.gone] : [])),
      ),
    )
  }
  return []
}

/** What the writers of a refused commit get: the backend, the revision and its reason. */
export function refusedError(backend: string, revision: number, cause: unknown): DataspaceError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  // A cluster node's commit whose session was reaped or taken over (docs/cluster.md, "Sessions
  // in the store"): the writer's process is gone, as a single server would say.
  if (cause instanceof ProcessExited) {
    return new ProcessExited(
      `the ${backend} backend refused the commit at revision ${revision}: its session is lost (${reason}); ` +
        'nothing of it was applied',
      cause.pid,
      { cause },
    )
  }
  return new InvalidArgument(
    `the ${backend} backend refused the commit at revision ${revision} (${reason}); ` +
      'nothing of it was applied',
    { cause },
  )
}

/** The commit stored in place of a refused one: no changes, so revisions stay gap-free. */
export function emptyBatch(id: string, revision: number, node?: string): WriteBatch {
  return {
    id,
    ...(node === undefined ? {} : { node }),
    commits: [{ revision, changes: [] }],
    kinds: [],
    sessions: { put: [], delete: [] },
  }
}
