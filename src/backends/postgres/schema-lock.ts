import { hostname } from 'node:os'
import pg from 'pg'
import type { PoolConfig } from 'pg'
import { Unavailable } from '../../errors/index.js'
import { dedicatedClientConfig } from './connections.js'

// The first key of the two-key advisory lock: "ds" in ASCII, so our locks are recognisable in
// pg_locks; the second is hashtext(schema).
const LOCK_CLASS = 0x6473

/**
 * One single-node server per schema, until cluster mode (docs/design.md) lets several share one:
 * a session-level `pg_try_advisory_lock` taken at open on a dedicated connection and held for the
 * backend's life. The connection is named (`application_name`: `dataspace pid=… host=…`) so a
 * refused server can name the holder from `pg_stat_activity`.
 *
 * PostgreSQL drops a session lock with its connection, so a dead lock connection means another
 * server may now hold the schema: `check` then refuses every write (`Unavailable`) until
 * `reacquire` gets the lock back on a new connection.
 */
export class SchemaLock {
  readonly #client: pg.Client
  #lost: Error | undefined

  private constructor(client: pg.Client) {
    this.#client = client
    const lose = (error: Error): void => {
      this.#lost ??= error
    }
    client.on('error', lose)
    client.on('end', () => lose(new Error('the lock connection closed')))
  }

  /** Takes the schema's lock, or fails at once with `Unavailable` naming the holder. */
  static async acquire(
    options: { readonly url: string; readonly pool?: Omit<PoolConfig, 'connectionString'> },
    schema: string,
  ): Promise<SchemaLock> {
    const client = new pg.Client(
      dedicatedClientConfig(options, `dataspace pid=${process.pid} host=${hostname()}`),
    )
    await client.connect()
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked',
        [LOCK_CLASS, schema],
      )
      if (rows[0]?.locked !== true) {
        throw new Unavailable(
          `the PostgreSQL schema "${schema}" is in use by another dataspace server ` +
            `(${await holderOf(client, schema)}); stop it or use another schema`,
        )
      }
    } catch (error) {
      await client.end().catch(() => undefined)
      throw error
    }
    return new SchemaLock(client)
  }

  /** Why writes must stop (the lock connection died), or `undefined` while the lock is held. */
  get lost(): Error | undefined {
    return this.#lost
  }

  /** Releases the lock (with its connection). */
  async release(): Promise<void> {
    this.#lost ??= new Error('released')
    await this.#client.end().catch(() => undefined)
  }
}

/** The holder of `schema`'s lock as pg_stat_activity shows it, for the refusal message. */
async function holderOf(client: pg.Client, schema: string): Promise<string> {
  const { rows } = await client.query<{
    pid: number
    application_name: string
    client_addr: string | null
    backend_start: Date
  }>(
    `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objsubid = 2
       AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)
     LIMIT 1`,
    [LOCK_CLASS, schema],
  )
  const row = rows[0]
  if (row === undefined) return 'holder unknown'
  const who = row.application_name === '' ? 'an unnamed client' : row.application_name
  const from = row.client_addr === null ? '' : ` from ${row.client_addr}`
  return `held by ${who}${from}, database backend pid ${row.pid}, since ${row.backend_start.toISOString()}`
}
