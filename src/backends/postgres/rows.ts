/**
 * How the PostgreSQL backend's rows become the engine's values: what `open`, `query`,
 * `explainQuery` and the change feed read.
 * @module
 */
import type { DataspaceRecord } from '../../model/types.js'
import type { StoredAnswer, StoredKind, StoredSession } from '../../engine/ports/backend.js'

export interface RecordRow {
  kind: string
  id: string
  data: unknown
  labels: Record<string, string>
  owner: string | null
  revision: string
  created_revision: string
  expires_at: number | null
}

/** A record as the feed stores it: the JSON of a {@link DataspaceRecord}. */
export type RecordJson = DataspaceRecord

export interface KindRow {
  kind: string
  fields: string[] | null
  indexes: string[]
  resident: boolean
}

export interface SessionRow {
  id: string
  resume_token_hash: string
  pid: string
  name: string
  ttl: number
  children: { pid: string; name: string }[]
  last_child: number
  principal: string | null
}

export interface AnswerRow {
  session: string
  call: string
  revision: string
  value: string
}

export function answerFromRow(row: AnswerRow): StoredAnswer {
  return {
    session: row.session,
    call: Number(row.call),
    revision: Number(row.revision),
    value: row.value,
  }
}

export function recordFromRow(row: RecordRow): DataspaceRecord {
  return {
    kind: row.kind,
    id: row.id,
    data: row.data,
    labels: row.labels,
    owner: row.owner,
    revision: Number(row.revision),
    createdRevision: Number(row.created_revision),
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
  }
}

export function recordFromJson(json: RecordJson): DataspaceRecord {
  return {
    kind: json.kind,
    id: json.id,
    data: json.data,
    labels: json.labels,
    owner: json.owner,
    revision: json.revision,
    createdRevision: json.createdRevision,
    ...(json.expiresAt === undefined ? {} : { expiresAt: json.expiresAt }),
  }
}

export function kindFromRow(row: KindRow): StoredKind {
  return {
    kind: row.kind,
    ...(row.fields === null ? {} : { fields: row.fields }),
    indexes: row.indexes,
    ...(row.resident ? {} : { resident: false }),
  }
}

export function sessionFromRow(row: SessionRow): StoredSession {
  return {
    id: row.id,
    resumeTokenHash: row.resume_token_hash,
    pid: row.pid,
    name: row.name,
    ttl: row.ttl,
    children: row.children,
    lastChild: row.last_child,
    principal: row.principal,
  }
}

/** Every `Index Name` in an EXPLAIN (FORMAT JSON) plan, outermost first. */
export function indexNames(plan: unknown): string[] {
  const found: string[] = []
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const child of node) visit(child)
    } else if (typeof node === 'object' && node !== null) {
      const name = (node as Record<string, unknown>)['Index Name']
      if (typeof name === 'string' && !found.includes(name)) found.push(name)
      for (const value of Object.values(node)) visit(value)
    }
  }
  visit(plan)
  return found
}
