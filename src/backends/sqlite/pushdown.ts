import { createHash } from 'node:crypto'
import type { Selector } from '../../model/types.js'
import {
  compileGlob,
  nextPrefix,
  parseFieldSelector,
  parseLabelSelector,
} from '../../query/index.js'
import type { FieldRequirement, LabelRequirement } from '../../query/index.js'
import type { QueryPage, SqlQuery } from '../../engine/ports/backend.js'

/** The columns every record read selects. */
export const RECORD_COLUMNS =
  'kind, id, data, labels, owner, revision, created_revision, expires_at'

/** The name SQLite gives the primary key (kind, id) of the WITHOUT ROWID `records` table. */
export const PRIMARY_INDEX = 'sqlite_autoindex_records_1'

/** The index on (kind, owner) that serves `owner` selectors and the per-owner counts. */
export const OWNER_INDEX = 'ds_records_kind_owner'

/**
 * Translates a selector into one parameterized SELECT over `records`, in id order after
 * `page.after`, at most `page.limit` rows (no LIMIT when it is not finite). What is pushed down:
 *
 * - `kind` and `owner`: exact (`owner` through {@link OWNER_INDEX}).
 * - `id`: an exact id is `id = ?`; a glob with a literal prefix is the range
 *   `id >= prefix AND id < next(prefix)` on the primary key (BINARY collation: UTF-8 byte order,
 *   which is code point order); the rest of the glob is not pushed, nor a prefix holding a lone
 *   surrogate (SQLite stores it as three bytes that a completed pair would not start with).
 * - fields compare the path's {@link fieldKey} (the expression of a declared field's index):
 *   a string is itself, `true` / `false` the text `'true'` / `'false'`, a number its number,
 *   missing and `null` the text `''`, an array the marker `'['`, an object NULL. `path=v` is
 *   `key IN (v, number(v) when v is a number's string form, '[')`, an index lookup, and arrays
 *   are then kept only when an element has the form `v` (or, for `v = ''`, when empty). Exact
 *   but for one superset: a string `[` also comes back.
 * - fields `path!=v`: NOT of an equality that implies the engine's (strings, booleans,
 *   integers, missing, array elements of those kinds), never NULL; a real number (or an array
 *   holding one) whose form is `v` also comes back. No index serves it.
 * - labels `=`, `!=`, `in`, `notin`, `k`, `!k`: exact, on `json_extract(labels, ?)`; `k>n` /
 *   `k<n`: only `k` exists. No index serves labels.
 *
 * JSON paths are SQL literals (an index expression must be spelled the same in the query), built
 * by {@link jsonPath} and {@link sqlString}; every selector value is a parameter. The result is
 * a superset of the matches, never missing one: the engine re-applies the selector.
 */
export function selectQuery(
  kind: string,
  selector: Selector,
  page: QueryPage | undefined,
): SqlQuery {
  const values: unknown[] = [kind]
  const where = ['kind = ?']
  const add = (condition: string, ...params: unknown[]): void => {
    where.push(condition)
    values.push(...params)
  }
  if (selector.id !== undefined) {
    const glob = compileGlob(String(selector.id))
    if (glob.exact) add('id = ?', glob.prefix)
    else if (glob.prefix !== '' && !/\p{Cs}/u.test(glob.prefix)) {
      add('id >= ?', glob.prefix)
      const next = nextPrefix(glob.prefix)
      if (next !== undefined) add('id < ?', next)
    }
  }
  if (selector.owner !== undefined) add('owner = ?', selector.owner)
  if (selector.fields !== undefined) {
    for (const requirement of parseFieldSelector(selector.fields).requirements) {
      const condition = fieldCondition(requirement)
      add(condition.text, ...condition.values)
    }
  }
  if (selector.labels !== undefined) {
    for (const requirement of parseLabelSelector(selector.labels).requirements) {
      const condition = labelCondition(requirement)
      add(condition.text, ...condition.values)
    }
  }
  if (page?.after !== undefined) add('id > ?', page.after)
  let text = `SELECT ${RECORD_COLUMNS} FROM records WHERE ${where.join('\n  AND ')} ORDER BY id`
  if (page !== undefined && Number.isFinite(page.limit)) {
    text += ' LIMIT ?'
    values.push(Math.max(0, Math.floor(page.limit)))
  }
  return { text, values }
}

/**
 * A JSON path of object keys, each a quoted label (`$."spec"."pool"`): SQLite reads a quoted
 * label up to the next `"` and then decodes JSON escapes in it, so `"`, `\`, control characters
 * and lone surrogates are written as escapes. A quoted label never steps into an array, as the
 * engine does not.
 */
export function jsonPath(segments: readonly string[]): string {
  return `$${segments.map((segment) => `."${escapeLabel(segment)}"`).join('')}`
}

/** `"`, `\`, control characters and lone surrogates: what a quoted label writes as an escape. */
const LABEL_ESCAPED = /["\\]|\p{Cc}|\p{Cs}/gu

function escapeLabel(segment: string): string {
  return segment.replace(LABEL_ESCAPED, (char) =>
    char === '\\' ? '\\\\' : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/**
 * An SQL string literal (`'it''s'`). `undefined` for text holding NUL, which ends SQL text: such
 * a literal cannot be written.
 */
export function sqlString(text: string): string | undefined {
  return text.includes('\0') ? undefined : `'${text.replaceAll("'", "''")}'`
}

/**
 * The comparable key of a data path (see {@link selectQuery}): the expression a declared field's
 * index stores, and what field selectors compare, so that SQLite matches the two.
 */
export function fieldKey(segments: readonly string[]): string {
  const path = sqlString(jsonPath(segments))!
  return `(CASE json_type(data, ${path}) WHEN 'array' THEN '[' WHEN 'object' THEN NULL
    WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
    ELSE coalesce(json_extract(data, ${path}), '') END)`
}

/** The name of the index on a kind's declared field: readable, and unique by a hash. */
export function fieldIndexName(kind: string, path: string): string {
  const slug = `${kind}_${path}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 40)
  const hash = createHash('sha256').update(`${kind}\0${path}`).digest('hex').slice(0, 10)
  return `ds_f_${slug}_${hash}`
}

/**
 * The DDL of a declared field's index: a partial expression index over the kind's rows only
 * (SQLite uses it for `kind = ?` once the parameter is bound). `undefined` when the kind cannot
 * be written as a literal.
 */
export function fieldIndexDdl(kind: string, path: string): string | undefined {
  const literal = sqlString(kind)
  if (literal === undefined) return undefined
  const key = fieldKey(path.split('.'))
  return `CREATE INDEX IF NOT EXISTS ${fieldIndexName(kind, path)} ON records (${key})
    WHERE kind = ${literal}`
}

/** A condition and its parameters. */
interface Condition {
  readonly text: string
  readonly values: readonly unknown[]
}

/** The typed forms a field value `v` takes in SQLite: its number (and int64) when it is one. */
interface Forms {
  readonly value: string
  /** `Number(v)` when some number prints as `v`. */
  readonly number: number | undefined
  /** `BigInt(v)` when `v` is an integer within int64: SQLite stores those as INTEGER, exactly. */
  readonly integer: bigint | undefined
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

function forms(value: string): Forms {
  const number = Number(value)
  const canonical = value !== '' && Number.isFinite(number) && String(number) === value
  let integer: bigint | undefined
  if (canonical && /^-?[0-9]+$/.test(value)) {
    const big = BigInt(value)
    if (big >= INT64_MIN && big <= INT64_MAX) integer = big
  }
  return { value, number: canonical ? number : undefined, integer }
}

function fieldCondition(requirement: FieldRequirement): Condition {
  const { segments, op } = requirement
  const f = forms(requirement.value)
  const path = sqlString(jsonPath(segments))!
  const key = fieldKey(segments)
  const isArray = `json_type(data, ${path}) = 'array'`
  if (op === '=') {
    // One index lookup for every form, then arrays are kept only when an element matches.
    const keys: unknown[] = [f.value]
    if (f.number !== undefined) keys.push(f.number)
    if (f.integer !== undefined) keys.push(f.integer)
    const element = elementCondition(f, path, true)
    return {
      text: `(${key} IN (${keys.map(() => '?').join(', ')}, '[')
    AND (NOT coalesce(${isArray}, 0) OR ${element.text}))`,
      values: [...keys, ...element.values],
    }
  }
  // `!=`: only an equality that implies the engine's, so that its negation drops no match.
  const values: unknown[] = [f.value]
  let exact = `${key} = ?`
  if (f.value === '[') exact = `(${exact} AND NOT coalesce(${isArray}, 0))`
  if (f.integer !== undefined) {
    exact += ` OR (json_type(data, ${path}) = 'integer' AND ${key} = ?)`
    values.push(f.integer)
  }
  const element = elementCondition(f, path, false)
  values.push(...element.values)
  return {
    text: `NOT coalesce(${exact} OR (${isArray} AND ${element.text}), 0)`,
    values,
  }
}

/**
 * Whether an array at `path` holds an element whose string form is `v` (or is empty, for
 * `v = ''`). With `loose`, a real number element is compared too (the index side, a superset);
 * without, only forms whose equality is exact (the `!=` side).
 */
function elementCondition(f: Forms, path: string, loose: boolean): Condition {
  const values: unknown[] = [f.value]
  const arms = [`(type = 'text' AND value = ?)`]
  if (f.value === 'true' || f.value === 'false') arms.push(`type = '${f.value}'`)
  if (f.value === '') arms.push(`type = 'null'`)
  if (loose && f.number !== undefined) {
    arms.push(`(type IN ('integer', 'real') AND value IN (?, ?))`)
    values.push(f.number, f.integer ?? f.number)
  } else if (f.integer !== undefined) {
    arms.push(`(type = 'integer' AND value = ?)`)
    values.push(f.integer)
  }
  const exists = `EXISTS (SELECT 1 FROM json_each(data, ${path}) WHERE ${arms.join(' OR ')})`
  return {
    text: f.value === '' ? `(json_array_length(data, ${path}) = 0 OR ${exists})` : exists,
    values,
  }
}

function labelCondition(requirement: LabelRequirement): Condition {
  const { key, op, values } = requirement
  const path = jsonPath([key])
  const label = 'json_extract(labels, ?)'
  const list = values.map(() => '?').join(', ')
  switch (op) {
    case '=':
      return { text: `${label} = ?`, values: [path, values[0] ?? ''] }
    case '!=':
      return { text: `${label} IS NOT ?`, values: [path, values[0] ?? ''] }
    case 'in':
      return { text: `${label} IN (${list})`, values: [path, ...values] }
    case 'notin':
      return { text: `coalesce(${label} NOT IN (${list}), 1)`, values: [path, ...values] }
    case 'exists':
      return { text: 'json_type(labels, ?) IS NOT NULL', values: [path] }
    case '!exists':
      return { text: 'json_type(labels, ?) IS NULL', values: [path] }
    case 'gt':
    case 'lt':
      // The integer comparison stays in memory: only that the key is there is pushed.
      return { text: 'json_type(labels, ?) IS NOT NULL', values: [path] }
    default:
      return op satisfies never
  }
}
