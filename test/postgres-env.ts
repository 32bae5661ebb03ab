// Where the tests find PostgreSQL, and whether it is there. In CI it must answer: a missing
// database is a broken pipeline, not a reason to go green. Elsewhere, tests that need it skip
// and say why.
import pg from 'pg'

export const POSTGRES_URL =
  process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

async function probe(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const unreachable = await probe()
if (unreachable !== undefined && process.env.CI !== undefined) {
  throw new Error(`PostgreSQL does not answer at ${POSTGRES_URL} (CI is set): ${unreachable}`)
}

/** `false` when PostgreSQL answers; otherwise the reason its tests are skipped (`{ skip }`). */
export const postgresSkip: string | false =
  unreachable === undefined
    ? false
    : `PostgreSQL does not answer at ${POSTGRES_URL} (${unreachable}); set DATASPACE_TEST_POSTGRES_URL — it runs in CI`

/** Runs one statement on a connection of its own, for tests that read or doctor the tables. */
export async function sql<R extends pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    return (await client.query<R>(text, values)).rows
  } finally {
    await client.end()
  }
}

/** Drops a schema a test created (names come from the tests: fixed prefixes and digits). */
export async function dropSchema(schema: string): Promise<void> {
  await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
}
