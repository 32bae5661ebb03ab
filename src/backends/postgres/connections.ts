import pg from 'pg'
import type { ClientConfig, PoolClient, PoolConfig } from 'pg'

/**
 * The settings of a connection of its own, outside the pool (the schema lock's, a follower's
 * LISTEN): the pool's `ssl`, connect timeout and keepalive, so that a dead or silent database
 * fails its connect instead of hanging it, and a name (`application_name`, at most 63 bytes)
 * that `pg_stat_activity` shows.
 */
export function dedicatedClientConfig(
  options: { readonly url: string; readonly pool?: Omit<PoolConfig, 'connectionString'> },
  applicationName: string,
): ClientConfig {
  const pool = options.pool
  return {
    ...(pool?.ssl === undefined ? {} : { ssl: pool.ssl }),
    ...(pool?.connectionTimeoutMillis === undefined
      ? {}
      : { connectionTimeoutMillis: pool.connectionTimeoutMillis }),
    ...(pool?.keepAlive === undefined ? {} : { keepAlive: pool.keepAlive }),
    connectionString: options.url,
    application_name: applicationName.slice(0, 63),
  }
}

/**
 * The PostgreSQL backend's connection pool, and how it checks connections out: a connection
 * that failed outside the database, or that cannot roll back, never goes back into the pool.
 */
export class Connections {
  readonly #pool: pg.Pool
  /** `query_timeout` of `query` and `single` (absent: none). */
  readonly #timeout: { readonly query_timeout?: number }

  /**
   * @param queryTimeoutMs how long `query` and `single` wait for an answer (`Infinity`: for
   *   ever). A statement that times out fails, and its connection is dropped, not pooled: the
   *   database (or the network to it) stopped answering, and its answer may still come.
   */
  constructor(
    url: string,
    config: Omit<PoolConfig, 'connectionString'> | undefined,
    onError: (error: Error) => void,
    queryTimeoutMs = Infinity,
  ) {
    this.#pool = new pg.Pool({ ...config, connectionString: url })
    this.#pool.on('error', onError)
    this.#timeout = queryTimeoutMs === Infinity ? {} : { query_timeout: queryTimeoutMs }
  }

  /** A pooled connection, checked out as it is (the caller releases it). */
  connect(): Promise<PoolClient> {
    return this.#pool.connect()
  }

  /** One statement on any pooled connection (a read). */
  query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    // pool.query releases a connection whose statement failed with the error: it is closed.
    return this.#pool.query<R>(timed(text, values, this.#timeout))
  }

  /**
   * Runs one statement on a pooled connection (its own transaction). Unlike `pool.query`, a
   * connection whose statement failed in the database (a refused batch) goes back to the pool.
   */
  async single<R extends pg.QueryResultRow>(
    text: string,
    values: readonly unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.withClient(async (client, distrust) => {
      try {
        return await client.query<R>(timed(text, [...values], this.#timeout))
      } catch (error) {
        if (!(error instanceof pg.DatabaseError)) distrust(error)
        throw error
      }
    })
  }

  /** Runs `run` in one transaction on one pooled connection; rolls back on any error. */
  async transaction<T>(begin: string, run: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.withClient(async (client, distrust) => {
      await client.query(begin)
      try {
        const result = await run(client)
        await client.query('COMMIT')
        return result
      } catch (error) {
        // A connection that cannot roll back is not trusted back into the pool.
        await client.query('ROLLBACK').catch(distrust)
        throw error
      }
    })
  }

  /**
   * Checks a connection out for `run` and back in after it. `distrust(error)` marks it broken so
   * the pool drops it instead of reusing it. A connection that dies while checked out emits
   * 'error' on the client, which the pool only listens for on idle clients: unheard, it would
   * crash the process, so it is heard here and marks the connection broken.
   */
  async withClient<T>(
    run: (client: PoolClient, distrust: (error: unknown) => void) => Promise<T>,
  ): Promise<T> {
    const client = await this.#pool.connect()
    let broken: Error | undefined
    const distrust = (error: unknown): void => {
      broken ??= error instanceof Error ? error : new Error(String(error))
    }
    client.on('error', distrust)
    try {
      return await run(client, distrust)
    } finally {
      client.off('error', distrust)
      client.release(broken)
    }
  }

  end(): Promise<void> {
    return this.#pool.end()
  }
}

/** A statement with the pool's answer timeout (pg reads `query_timeout` per query too). */
function timed(
  text: string,
  values: unknown[],
  timeout: { readonly query_timeout?: number },
): pg.QueryConfig {
  return { text, values, ...timeout } as pg.QueryConfig
}

/**
 * Ends a dedicated connection (a LISTEN, the write turn) without waiting for the database's
 * goodbye for more than a second: over a network that silently drops packets, `end()` would wait
 * for TCP to give up (about 15 minutes) and hold `close()` as long. The socket is destroyed
 * instead.
 */
export async function endSoon(client: pg.Client | undefined): Promise<void> {
  if (client === undefined) return
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, 1_000, 'late')))
  const outcome = await Promise.race([client.end().catch(() => undefined), late])
  clearTimeout(timer)
  if (outcome === 'late') {
    ;(
      client as unknown as { connection?: { stream?: { destroy(): void } } }
    ).connection?.stream?.destroy()
  }
}
