import type { Selector } from '../../model/types.js'
import {
  compileGlob,
  nextPrefix,
  parseFieldSelector,
  parseLabelSelector,
} from '../../query/index.js'
import type { FieldRequirement, LabelRequirement } from '../../query/index.js'
import type { QueryPage, SqlQuery } from '../../engine/ports/backend.js'

/** The columns every record read selects, `expires_at` as epoch milliseconds. */
export const RECORD_COLUMNS = `kind, id, data, labels, owner, revision, created_revision,
  (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at`

class Params {
  readonly values: unknown[] = []
  add(value: unknown): string {
    this.values.push(value)
    return `$${this.values.length}`
  }
}

/**
 * Translates a selector into one parameterized SELECT over `records`, in id order after
 * `page.after`, at most `page.limit` rows. What is pushed down (docs/backends.md, "PostgreSQL"):
 *
 * - `kind` and `owner`: exact.
 * - `id`: an exact id is `id = $1`; a glob with a literal prefix is the range
 *   `id >= prefix AND id < next(prefix)` on the primary key; the rest of the glob is not pushed.
 * - fields `path=v`: `data #>> path = v` (the btree expression index) OR `data #> path @> [v']`
 *   for each JSON form v' whose string form is `v` (the GIN index, for array elements); `path=`
 *   also takes missing, null, `[]` and arrays holding `null` or `""`. A superset: an object whose
 *   JSON text is `v` also comes back, and the engine drops it.
 * - fields `path!=v`: NOT of an exact (typed) equality, never NULL; no index serves it.
 * - Field paths with a segment that could read as an array index (`0`, `-1`, ` 2`) are not
 *   pushed: Postgres would step into arrays where the engine does not.
 * - labels `=`, `!=`, `in`, `notin`: exact, through `@>` on the labels GIN index; `k` / `!k`:
 *   `labels ? k` and its negation; `k>n` / `k<n`: only `labels ? k`.
 *
 * The result is a superset of the matches, never missing one: the engine re-applies the selector.
 */
export function selectQuery(
  table: string,
  kind: string,
  selector: Selector,
  page: QueryPage | undefined,
): SqlQuery {
  const params = new Params()
  const where = [`kind = ${params.add(kind)}`]
  if (selector.id !== undefined) where.push(...idConditions(String(selector.id), params))
  if (selector.owner !== undefined) where.push(`owner = ${params.add(selector.owner)}`)
  if (selector.fields !== undefined) {
    for (const requirement of parseFieldSelector(selector.fields).requirements) {
      const condition = fieldCondition(requirement, params)
      if (condition !== undefined) where.push(condition)
    }
  }
  if (selector.labels !== undefined) {
    for (const requirement of parseLabelSelector(selector.labels).requirements) {
      where.push(labelCondition(requirement, params))
    }
  }
  if (page?.after !== undefined) where.push(`id > ${params.add(page.after)}`)
  let text = `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${where.join('\n  AND ')} ORDER BY id`
  if (page !== undefined && Number.isFinite(page.limit)) {
    text += ` LIMIT ${params.add(Math.max(0, Math.floor(page.limit)))}`
  }
  return { text, values: params.values }
}

function idConditions(pattern: string, params: Params): string[] {
  const glob = compileGlob(pattern)
  if (glob.exact) return [`id = ${params.add(glob.prefix)}`]
  // A lone surrogate cannot be stored in Postgres text, so such a prefix bounds nothing here.
  if (glob.prefix === '' || /\p{Cs}/u.test(glob.prefix)) return []
  const conditions = [`id >= ${params.add(glob.prefix)}`]
  const next = nextPrefix(glob.prefix)
  if (next !== undefined) conditions.push(`id < ${params.add(next)}`)
  return conditions
}

/** A path segment that `#>` / `#>>` would read as an array index (Postgres uses strtol). */
const INDEX_LIKE = /^\s*[+-]?[0-9]/

function fieldCondition(requirement: FieldRequirement, params: Params): string | undefined {
  const { segments, op, value } = requirement
  if (segments.some((segment) => INDEX_LIKE.test(segment))) return undefined
  const path = params.add(segments)
  const text = `(data #>> ${path}::text[])`
  const json = `(data #> ${path}::text[])`
  if (op === '!=') return `NOT coalesce(${exactEquals(text, json, value, params)}, false)`
  // `=`: arms the two indexes can serve, OR-ed (a BitmapOr); a superset of the matches.
  const arms: string[] = []
  if (value === '') {
    arms.push(`${text} IS NULL`, `${text} = ''`, `${text} = '[]'`)
    arms.push(`${json} @> '[null]'::jsonb`, `${json} @> '[""]'::jsonb`)
  } else {
    arms.push(`${text} = ${params.add(value)}`)
    // Postgres prints 1e-7 as 0.0000001: let it render the number the way it stored it.
    if (canonicalNumber(value) && /e/.test(value)) {
      arms.push(`${text} = (${params.add(value)}::numeric)::text`)
    }
    for (const form of jsonForms(value)) {
      arms.push(`${json} @> ${params.add(JSON.stringify([form]))}::jsonb`)
    }
  }
  return `(${arms.join(' OR ')})`
}

/**
 * Exactly the engine's equality (field-values.ts), or less: its negation may return extra rows
 * but never drops a `!=` match. Typed so that an object whose text is `v` does not count.
 */
function exactEquals(text: string, json: string, value: string, params: Params): string {
  if (value === '') {
    return `(${text} IS NULL OR (jsonb_typeof(${json}) = 'string' AND ${text} = '')
      OR ${json} = '[]'::jsonb
      OR (jsonb_typeof(${json}) = 'array' AND (${json} @> '[null]'::jsonb OR ${json} @> '[""]'::jsonb)))`
  }
  const arms = [
    `(jsonb_typeof(${json}) IN ('string', 'boolean') AND ${text} = ${params.add(value)})`,
  ]
  if (canonicalNumber(value)) arms.push(`${json} = ${params.add(value)}::jsonb`)
  const contains = jsonForms(value).map(
    (form) => `${json} @> ${params.add(JSON.stringify([form]))}::jsonb`,
  )
  arms.push(`(jsonb_typeof(${json}) = 'array' AND (${contains.join(' OR ')}))`)
  return `(${arms.join(' OR ')})`
}

/** True when some JS number prints as `value` (`String(n) === value`). */
function canonicalNumber(value: string): boolean {
  const number = Number(value)
  return value !== '' && Number.isFinite(number) && String(number) === value
}

/** The JSON scalars whose string form is `value` (not null, which is the empty value). */
function jsonForms(value: string): (string | number | boolean)[] {
  const forms: (string | number | boolean)[] = [value]
  if (value === 'true' || value === 'false') forms.push(value === 'true')
  if (canonicalNumber(value)) forms.push(Number(value))
  return forms
}

function labelCondition(requirement: LabelRequirement, params: Params): string {
  const { key, op, values } = requirement
  const has = (value: string): string =>
    `labels @> ${params.add(JSON.stringify({ [key]: value }))}::jsonb`
  const anyOf = (): string => `(${values.map(has).join(' OR ')})`
  switch (op) {
    case '=':
      return has(values[0] ?? '')
    case '!=':
      return `NOT ${has(values[0] ?? '')}`
    case 'in':
      return anyOf()
    case 'notin':
      return `NOT ${anyOf()}`
    case 'exists':
      return `labels ? ${params.add(key)}`
    case '!exists':
      return `NOT (labels ? ${params.add(key)})`
    case 'gt':
    case 'lt':
      // The integer comparison stays in memory: Postgres would have to cast label text safely.
      return `labels ? ${params.add(key)}`
    default:
      return op satisfies never
  }
}
