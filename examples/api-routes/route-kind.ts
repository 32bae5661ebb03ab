import { z } from 'zod'
import type { DataspaceApi, DataspaceRecord } from '../../src/index.js'

/**
 * The `api.route` kind: the whole contract between subsystems and API servers (Saluki's
 * "shared type designed explicitly for defining dynamic API routes"). Neither side knows where
 * the other lives; they only agree on this shape.
 */
export const API_ROUTE_KIND = 'api.route'

/** Methods a route may answer; `HEAD` is served from `GET` routes. */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/** One of {@link HTTP_METHODS}. */
export type HttpMethod = (typeof HTTP_METHODS)[number]

/**
 * The schema of an `api.route` record's data. Zod 4 implements Standard Schema, so the engine
 * validates every assert with it and stores its output (defaults filled in).
 *
 * @example
 * await proc.assert('api.route', 'health', { path: '/health', body: { status: 'ok' } })
 */
export const apiRouteSchema = z.object({
  method: z.enum(HTTP_METHODS).default('GET'),
  // Exact-match paths: no query or fragment, so two subsystems cannot disagree on what matches.
  path: z
    .string()
    .max(512)
    .regex(/^\/[^\s?#]*$/, 'path must start with "/" and contain no whitespace, "?" or "#"'),
  /** The HTTP status the route answers with. */
  status: z.number().int().min(200).max(599).default(200),
  /** Any JSON value, sent back as the `body` field of the response. */
  body: z.json().optional(),
  description: z.string().max(200).optional(),
})

/** What a subsystem passes to `assert` (defaults may be left out). */
export type ApiRouteInput = z.input<typeof apiRouteSchema>

/** What is stored, and what servers read back. */
export type ApiRoute = z.output<typeof apiRouteSchema>

/** An `api.route` record as the dataspace hands it out. */
export type ApiRouteRecord = DataspaceRecord<ApiRoute>

/**
 * Declares the `api.route` kind on a dataspace: the schema, and an index on `path` so that
 * "who serves /health?" (`ds.list('api.route', { fields: 'path=/health' })`) is an index lookup.
 * Idempotent: every party may call it.
 */
export async function defineApiRouteKind(ds: Pick<DataspaceApi, 'defineKind'>): Promise<void> {
  await ds.defineKind<ApiRoute>(API_ROUTE_KIND, { schema: apiRouteSchema, indexes: ['path'] })
}

/**
 * Reads a record's data as a route. Servers re-validate what they watch rather than trust the
 * writer: a dataspace reached over the network, or one where the kind was declared without the
 * schema, may hand them anything.
 */
export function parseApiRoute(
  data: unknown,
): { ok: true; route: ApiRoute } | { ok: false; message: string } {
  const result = apiRouteSchema.safeParse(data)
  if (result.success) return { ok: true, route: result.data }
  return { ok: false, message: z.prettifyError(result.error) }
}
