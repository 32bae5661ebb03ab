import type { StandardSchemaV1 } from '@standard-schema/spec'
import { InvalidArgument, SchemaViolation } from '../errors/index.js'

/**
 * Runs a kind's Standard Schema validator. Validators may be async, so this may return a
 * promise; `validateSync` is for places inside a commit, which must not wait.
 */
export function validate(kind: string, schema: StandardSchemaV1, data: unknown): unknown {
  const result = schema['~standard'].validate(data)
  if (result instanceof Promise) return result.then((settled) => unwrap(kind, settled))
  return unwrap(kind, result)
}

/** Validation inside a commit (claim patches): an async validator cannot be awaited there. */
export function validateSync(kind: string, schema: StandardSchemaV1, data: unknown): unknown {
  const result = schema['~standard'].validate(data)
  if (result instanceof Promise) {
    result.catch(() => undefined) // nobody awaits it; keep a rejection from going unhandled
    throw new InvalidArgument(
      `kind "${kind}" has an async schema, which cannot validate a claim patch inside a commit; use a synchronous schema`,
    )
  }
  return unwrap(kind, result)
}

function unwrap(kind: string, result: StandardSchemaV1.Result<unknown>): unknown {
  if (result.issues === undefined) return result.value
  const issues = result.issues.map((issue) => ({
    message: issue.message,
    ...(issue.path === undefined
      ? {}
      : {
          path: issue.path.map((segment) => (typeof segment === 'object' ? segment.key : segment)),
        }),
  }))
  const summary = issues
    .slice(0, 3)
    .map((issue) =>
      issue.path !== undefined && issue.path.length > 0
        ? `${issue.path.join('.')}: ${issue.message}`
        : issue.message,
    )
    .join('; ')
  return throwViolation(kind, summary, issues, result.issues.length)
}

function throwViolation(
  kind: string,
  summary: string,
  issues: { message: string; path?: unknown[] }[],
  count: number,
): never {
  const more = count > 3 ? ` (and ${count - 3} more)` : ''
  throw new SchemaViolation(
    `data does not match the schema of kind "${kind}": ${summary}${more}`,
    issues,
  )
}
