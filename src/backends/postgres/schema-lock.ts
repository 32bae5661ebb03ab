import { hostname } from 'node:os'
import pg from 'pg'
import type { PoolConfig } from 'pg'
import { Unavailable } from '../../errors/index.js'
import { dedicatedClientConfig } from './connections.js'

// The first key of the two-key advisory lock: "ds" in ASCII, so our locks are recognisable in
// pg_locks; the second is hashtext(schema).
const LOCK_CLASS = 0x6473

/**
 * How a server holds its schema: `exclusive`, one single-node server alone; `shared`, any number
 * of cluster nodes together (`cluster: true`), who take turns to write (turn-lock.ts). The two
 * exclude each other, so a schema is written either by one server or by cluster nodes only.
 */
export type SchemaLockMode = 'exclusive' | 'shared'

/**
 * Who writes a schema: a session-level advisory lock taken at open on a dedicated connection and
 * held for the backend's life — `pg_try_advisory_lock` for a single-node server,
 * `pg_try_advisory_lock_shared` (the same key) for a cluster node. The connection is named
 * (`application_name`: `dataspace pid=… host=…`, `dataspace cluster node pid=… host=…`) so a
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
    mode: SchemaLockMode = 'exclusive',
  ): Promise<SchemaLock> {
    const who = mode === 'shared' ? 'dataspace cluster node' : 'dataspace'
    const client = new pg.Client(
      dedicatedClientConfig(options, `${who} pid=${process.pid} host=${hostname()}`),
    )
    await client.connect()
    try {
      const take = mode === 'shared' ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock'
      const { rows } = await client.query<{ locked: boolean }>(
        `SELECT ${take}($1, hashtext($2)) AS locked`,
        [LOCK_CLASS, schema],
      )
      if (rows[0]?.locked !== true) throw refusal(schema, mode, await holderOf(client, schema))
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

/** What one server that may not take the schema is told: who has it, and what to do. */
function refusal(schema: string, mode: SchemaLockMode, holder: Holder): Unavailable {
  const inUse = `the PostgreSQL schema "${schema}" is in use by`
  const oneWay =
    'start every server of the schema in cluster mode (cluster: true, serve --cluster), or none'
  if (mode === 'shared') {
    return new Unavailable(
      `${inUse} a single-node dataspace server (${holder.text}), and this node is in cluster ` +
        `mode: ${oneWay}`,
    )
  }
  if (holder.shared) {
    return new Unavailable(
      `${inUse} dataspace cluster nodes (${holder.text}), and this server is not in cluster ` +
        `mode: ${oneWay}`,
    )
  }
  return new Unavailable(
    `${inUse} another dataspace server (${holder.text}); stop it or use another schema`,
  )
}

interface Holder {
  /** `held by …` (or `holder unknown`: it let go meanwhile). */
  readonly text: string
  /** Held in shared mode: by cluster nodes. */
  readonly shared: boolean
}

/** A holder of `schema`'s lock as pg_stat_activity shows it, for the refusal message. */
async function holderOf(client: pg.Client, schema: string): Promise<Holder> {
  const { rows } = await client.query<{
    pid: number
    application_name: string
    client_addr: string | null
    backend_start: Date
    mode: string
  }>(
    `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start, l.mode
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objsubid = 2
       AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)
     ORDER BY a.backend_start
     LIMIT 1`,
    [LOCK_CLASS, schema],
  )
  const row = rows[0]
  if (row === undefined) return { text: 'holder unknown', shared: false }
  const who = row.application_name === '' ? 'an unnamed client' : row.application_name
  const from = row.client_addr === null ? '' : ` from ${row.client_addr}`
  return {
    text: `held by ${who}${from}, database backend pid ${row.pid}, since ${row.backend_start.toISOString()}`,
    shared: row.mode === 'ShareLock',
  }
}
