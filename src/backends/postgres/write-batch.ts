import type { DataspaceRecord, RetractReason } from '../../model/types.js'
import type {
  StoredChange,
  StoredCommit,
  StoredKind,
  StoredSession,
  WriteBatch,
} from '../../engine/ports/backend.js'
import { fieldIndexNames } from './migrations.js'
import type { SchemaTables } from './migrations.js'

/**
 * The one statement that writes a batch: the schema's `write_batch` function (migration 3; its
 * arguments as of migration 10) with the batch as JSON parameters. One statement is one round trip and, outside BEGIN/COMMIT, one
 * transaction: the function locks the counter row, checks the revision, and writes everything or
 * nothing. Its one row's `stored` is `false` for a retry of the batch stored last (nothing
 * written now). `undefined` when the batch holds nothing to write.
 */
export function writeBatchStatement(
  t: SchemaTables,
  batch: WriteBatch,
): { readonly text: string; readonly values: readonly unknown[] } | undefined {
  const commits = batch.commits
  const { deletes, upserts, feed } = commitRows(commits)
  const kinds = [...new Map(batch.kinds.map((kind) => [kind.kind, kind])).values()]
  const { put, delete: gone } = batch.sessions
  const answers = batch.answers ?? { put: [], delete: [] }
  const size = commits.length + kinds.length + put.length + gone.length
  if (size + answers.put.length + answers.delete.length === 0) return undefined
  const json = (rows: readonly unknown[]): string | null =>
    rows.length === 0 ? null : JSON.stringify(rows)
  return {
    text: `SELECT ${t.writeBatch}($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7::jsonb,
           $8::jsonb, $9::text[], $10::jsonb, $11::jsonb, $12::text, $13::jsonb,
           $14::jsonb) AS stored`,
    values: [
      batch.id,
      commits[0]?.revision ?? null,
      commits[commits.length - 1]?.revision ?? null,
      json(deletes),
      json(upserts),
      json(feed),
      json(kinds.map(kindToInput)),
      json(latestById(put).map(sessionToRow)),
      gone.length === 0 ? null : [...gone],
      json(answers.put),
      json(answers.delete),
      batch.node ?? null,
      json(
        commits.flatMap((c) =>
          c.session === undefined ? [] : [{ revision: c.revision, session: c.session }],
        ),
      ),
      json(
        commits.flatMap((c) =>
          (c.ends ?? []).map((session) => ({ revision: c.revision, session })),
        ),
      ),
    ],
  }
}

/**
 * A batch's commits as rows: every change goes to the feed; the records table gets each key's
 * final state once (a delete or an upsert).
 */
function commitRows(commits: readonly StoredCommit[]): {
  deletes: { kind: string; id: string }[]
  upserts: RecordInput[]
  feed: ChangeRow[]
} {
  const feed: ChangeRow[] = []
  const final = new Map<string, StoredChange>()
  for (const commit of commits) {
    commit.changes.forEach((change, seq) => {
      feed.push({
        revision: commit.revision,
        seq,
        kind: change.kind,
        id: change.id,
        after: change.after ?? null,
        // Only a removal has a reason (a follower's watchers get the writer's `retract`).
        ...(change.after === undefined && change.reason !== undefined
          ? { reason: change.reason }
          : {}),
      })
      // JSON.stringify of the pair cannot collide, unlike a joined string.
      final.set(JSON.stringify([change.kind, change.id]), change)
    })
  }
  const upserts: RecordInput[] = []
  const deletes: { kind: string; id: string }[] = []
  for (const change of final.values()) {
    if (change.after === undefined) deletes.push({ kind: change.kind, id: change.id })
    else upserts.push(recordToInput(change.after))
  }
  return { deletes, upserts, feed }
}

/** A kind declaration for `write_batch`, with the names of the indexes its paths get. */
function kindToInput(kind: StoredKind): Record<string, unknown> {
  return {
    kind: kind.kind,
    // Absent (SQL NULL in the column) when the kind declares no fields.
    ...(kind.fields === undefined ? {} : { fields: kind.fields }),
    indexes: kind.indexes,
    ...(kind.resident === false ? { resident: false } : {}),
    ensure: kind.indexes.map((path) => ({
      path: path.split('.'),
      ...fieldIndexNames(kind.kind, path),
    })),
  }
}

function latestById(sessions: readonly StoredSession[]): StoredSession[] {
  return [...new Map(sessions.map((session) => [session.id, session])).values()]
}

function sessionToRow(session: StoredSession): Record<string, unknown> {
  return {
    id: session.id,
    resume_token_hash: session.resumeTokenHash,
    pid: session.pid,
    name: session.name,
    ttl: session.ttl,
    children: session.children,
    last_child: session.lastChild,
    principal: session.principal,
    ...(session.fresh === true ? { fresh: true } : {}),
  }
}

interface ChangeRow {
  readonly revision: number
  readonly seq: number
  readonly kind: string
  readonly id: string
  readonly after: DataspaceRecord | null
  readonly reason?: RetractReason
}

interface RecordInput {
  readonly kind: string
  readonly id: string
  readonly data: unknown
  readonly labels: Readonly<Record<string, string>>
  readonly owner: string | null
  readonly revision: number
  readonly created_revision: number
  readonly expires_at: number | null
}

function recordToInput(record: DataspaceRecord): RecordInput {
  return {
    kind: record.kind,
    id: record.id,
    // `data` may be `undefined`-free JSON only; a missing value is stored as JSON null.
    data: record.data ?? null,
    labels: record.labels,
    owner: record.owner,
    revision: record.revision,
    created_revision: record.createdRevision,
    expires_at: record.expiresAt ?? null,
  }
}
