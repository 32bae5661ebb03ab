// PostgreSQL cluster nodes (docs/backends.md, "Cluster nodes"): several servers open one schema
// with `cluster: true`, share its schema lock (a single-node writer beside them is refused, and
// the reverse), load no sessions, and take turns to write through the write turn
// (`cluster.lock` … `cluster.unlock`, an advisory lock on a connection of its own).
// Needs PostgreSQL: it skips outside CI when none answers, and says why (test/postgres-env.ts).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import pg from 'pg'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import type { PostgresBackend, PostgresBackendOptions } from '../../src/backends/postgres/index.js'
import type { StoredCommit, WriteBatch } from '../../src/backends/index.js'
import { Conflict, InvalidArgument, Unavailable } from '../../src/errors/index.js'
import { sleep, TcpProxy, until } from '../client/helpers.js'
import { commit, nextBatchId, record, session } from './fixtures.js'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'

const NOTHING_ELSE = { kinds: [], sessions: { put: [], delete: [] } } as const

function freshSchema(): string {
  return `ds_cluster_${randomBytes(6).toString('hex')}`
}

/** A batch of the writer run `run` (a node's runtime: one batch at a time, see WriteBatch.id). */
function batch(commits: readonly StoredCommit[], run?: string): WriteBatch {
  return { id: nextBatchId(run), commits, ...NOTHING_ELSE }
}

/**
 * `count` cluster nodes on a fresh schema, all open; `body` runs with them, then everything is
 * closed and the schema dropped.
 */
async function withNodes(
  count: number,
  body: (nodes: PostgresBackend[], schema: string) => Promise<void>,
  options: Partial<PostgresBackendOptions> = {},
): Promise<void> {
  const schema = freshSchema()
  const nodes: PostgresBackend[] = []
  try {
    for (let i = 0; i < count; i++) {
      const node = postgresBackend({
        url: POSTGRES_URL,
        schema,
        pool: { max: 3 },
        cluster: true,
        ...options,
      })
      nodes.push(node)
      await node.open()
    }
    await body(nodes, schema)
  } finally {
    for (const node of nodes) await node.close()
    await dropSchema(schema)
  }
}

/** The database pid of the connection holding `schema`'s write turn now, if any. */
async function turnHolder(schema: string): Promise<number | undefined> {
  const rows = await sql<{ pid: number }>(
    `SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objsubid = 2
       AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)
       AND a.application_name LIKE $3`,
    [0x6474, schema, `dataspace node schema=${schema} %`],
  )
  assert.ok(rows.length <= 1, `one holder at most, got ${rows.length}`)
  return rows[0]?.pid
}

/**
 * The ticks until the keepalive timer of the server's end of a local TCP connection fires
 * (`/proc/net/tcp`, timer 2), or `undefined` when that socket is not seen here (another host or
 * network namespace, not Linux).
 */
function serverKeepaliveTicks(serverPort: number, clientPort: number): number | undefined {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0')
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (!fields[1]?.endsWith(`:${hex(serverPort)}`)) continue
      if (!fields[2]?.endsWith(`:${hex(clientPort)}`)) continue
      const [timer, when] = (fields[5] ?? '').split(':')
      // Another timer (or none) pending now: not known yet.
      return timer === '02' ? parseInt(when!, 16) : Infinity
    }
  }
  return undefined
}

/** Whether `promise` settles within `ms` (it is left running either way). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)))
  const settled = promise.then(
    () => true,
    () => true,
  )
  try {
    return await Promise.race([settled, late])
  } finally {
    clearTimeout(timer)
  }
}

describe('postgres cluster options', () => {
  it('refuses a cluster that is not a boolean, and cluster with follow, with InvalidArgument', () => {
    for (const cluster of ['yes', 1, null]) {
      assert.throws(
        () => postgresBackend({ url: POSTGRES_URL, cluster: cluster as unknown as boolean }),
        (error: unknown) => error instanceof InvalidArgument && /cluster/.test(error.message),
        String(cluster),
      )
    }
    assert.throws(
      () => postgresBackend({ url: POSTGRES_URL, cluster: true, follow: true }),
      (error: unknown) => {
        assert.ok(error instanceof InvalidArgument, String(error))
        assert.match(error.message, /follow and cluster exclude each other/)
        return true
      },
    )
    postgresBackend({ url: POSTGRES_URL, cluster: false, follow: true })
  })

  it('a cluster node has a cluster seam and no follower seam; others have no cluster seam', () => {
    const node = postgresBackend({ url: POSTGRES_URL, cluster: true })
    assert.ok(!('follower' in node))
    for (const method of ['listen', 'kinds', 'snapshot', 'lock', 'unlock'] as const) {
      assert.equal(typeof node.cluster?.[method], 'function', method)
    }
    assert.ok(!('cluster' in postgresBackend({ url: POSTGRES_URL })))
    assert.ok(!('cluster' in postgresBackend({ url: POSTGRES_URL, follow: true })))
  })
})

describe('postgres cluster nodes', { skip: postgresSkip }, () => {
  it('open together on one schema, and both write', async () => {
    await withNodes(2, async ([a, b]) => {
      await a!.write(batch([commit(1, [record('k', 'a', 1)])]))
      await b!.write(batch([commit(2, [record('k', 'b', 2)])]))
      const page = await a!.changesSince(0, 10)
      assert.equal(page.trimmed === false && page.head, 2)
    })
  })

  it('refuse a single-node writer while open, naming the holder and what to do', async () => {
    await withNodes(1, async (_, schema) => {
      const single = postgresBackend({ url: POSTGRES_URL, schema })
      try {
        await assert.rejects(single.open(), (error: unknown) => {
          assert.ok(error instanceof Unavailable, String(error))
          assert.match(
            error.message,
            new RegExp(`schema "${schema}" is in use by dataspace cluster nodes`),
          )
          assert.match(error.message, /held by dataspace cluster node pid=\d+ host=/)
          assert.match(
            error.message,
            /start every server of the schema in cluster mode .*, or none/,
          )
          return true
        })
      } finally {
        await single.close()
      }
      // A follower still opens beside the nodes.
      const follower = postgresBackend({ url: POSTGRES_URL, schema, follow: true })
      try {
        await follower.open()
      } finally {
        await follower.close()
      }
    })
  })

  it('are refused while a single-node writer is open, and open once it closed', async () => {
    const schema = freshSchema()
    const single = postgresBackend({ url: POSTGRES_URL, schema })
    try {
      await single.open()
      const node = postgresBackend({ url: POSTGRES_URL, schema, cluster: true })
      try {
        await assert.rejects(node.open(), (error: unknown) => {
          assert.ok(error instanceof Unavailable, String(error))
          assert.match(
            error.message,
            new RegExp(`schema "${schema}" is in use by a single-node dataspace server`),
          )
          assert.match(error.message, /held by dataspace pid=\d+ host=/)
          assert.match(error.message, /this node is in cluster mode: start every server/)
          return true
        })
      } finally {
        await node.close()
      }
      await single.close()
      const later = postgresBackend({ url: POSTGRES_URL, schema, cluster: true })
      try {
        await later.open()
      } finally {
        await later.close()
      }
    } finally {
      await single.close()
      await dropSchema(schema)
    }
  })

  it('load no sessions and no answers', async () => {
    const schema = freshSchema()
    const single = postgresBackend({ url: POSTGRES_URL, schema })
    try {
      await single.open()
      await single.write({
        id: nextBatchId(),
        commits: [commit(1, [record('k', 'a', 1, { owner: 's1' })])],
        kinds: [{ kind: 'k', fields: ['n'], indexes: ['n'] }],
        sessions: { put: [session('s1')], delete: [] },
        answers: { put: [{ session: 's1', call: 1, revision: 1, value: '"ok"' }], delete: [] },
      })
      await single.close()
      const node = postgresBackend({ url: POSTGRES_URL, schema, cluster: true })
      try {
        const state = await node.open()
        assert.equal(state.revision, 1)
        assert.deepEqual(
          state.records.map((r) => r.id),
          ['a'],
        )
        assert.deepEqual(state.kinds, [{ kind: 'k', fields: ['n'], indexes: ['n'] }])
        assert.equal((await sql(`SELECT 1 FROM "${schema}".sessions`)).length, 1)
        assert.deepEqual(state.sessions, [])
        assert.equal(state.answers, undefined)
        assert.deepEqual(await node.cluster!.kinds(), state.kinds)
        assert.equal((await node.cluster!.snapshot()).revision, 1)
      } finally {
        await node.close()
      }
    } finally {
      await single.close()
      await dropSchema(schema)
    }
  })

  it('take the write turn one at a time, with the stored revision', async () => {
    await withNodes(2, async ([a, b], schema) => {
      assert.equal((await a!.cluster!.lock(5_000, 0, 0)).head, 0)
      await a!.write(batch([commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'b', 2)])]))
      const waiting = b!.cluster!.lock(5_000, 0, 10)
      assert.equal(await settlesWithin(waiting, 300), false, 'B got the turn while A held it')
      await a!.cluster!.unlock()
      // Granted after A's write: B reads the revision A stored, and the feed up to it.
      const page = await waiting
      assert.equal(page.head, 2)
      assert.deepEqual(page.trimmed === false && page.commits.map((c) => c.changes[0]?.id), [
        'a',
        'b',
      ])
      assert.ok((await turnHolder(schema)) !== undefined)
      await b!.cluster!.unlock()
      assert.equal(await turnHolder(schema), undefined)
      // Unlocking what is not held does nothing.
      await b!.cluster!.unlock()
      assert.equal((await a!.cluster!.lock(5_000, 0, 0)).head, 2)
      await a!.cluster!.unlock()
    })
  })

  it('read the feed after the turn was granted under a default of repeatable read', async () => {
    // default_transaction_isolation set for the role or the database: the lock's statements
    // share one implicit transaction, whose snapshot would be taken before the wait. The
    // connection string's startup options set it here for every connection of the nodes.
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('options', '-c default_transaction_isolation=repeatable\\ read')
    const probe = new pg.Client({ connectionString: url.toString() })
    await probe.connect()
    try {
      const { rows } = await probe.query<{ level: string }>(
        `SELECT current_setting('default_transaction_isolation') AS level`,
      )
      assert.equal(rows[0]?.level, 'repeatable read', 'the startup option is honoured')
    } finally {
      await probe.end()
    }
    await withNodes(
      2,
      async ([a, b]) => {
        await a!.cluster!.lock(5_000, 0, 0)
        const waiting = b!.cluster!.lock(5_000, 0, 10)
        assert.equal(await settlesWithin(waiting, 300), false, 'B got the turn while A held it')
        await a!.write(batch([commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'b', 2)])]))
        await a!.cluster!.unlock()
        const page = await waiting
        assert.equal(page.head, 2)
        assert.deepEqual(page.trimmed === false && page.commits.map((c) => c.changes[0]?.id), [
          'a',
          'b',
        ])
        await b!.cluster!.unlock()
      },
      { url: url.toString() },
    )
  })

  it("leave no lock timeout on the turn's session for the writes in the turn", async () => {
    await withNodes(1, async ([a], schema) => {
      await a!.cluster!.lock(200, 0, 0)
      // Another session holds the revision row longer than the lock's timeout: the write waits
      // for it, as any write waits for a row lock, and is not cancelled by the turn's timeout.
      const blocker = new pg.Client({ connectionString: POSTGRES_URL })
      await blocker.connect()
      try {
        await blocker.query('BEGIN')
        await blocker.query(`SELECT revision FROM "${schema}".revision FOR UPDATE`)
        const writing = a!.write(batch([commit(1, [record('k', 'a', 1)])]))
        writing.catch(() => undefined)
        await sleep(600)
        await blocker.query('COMMIT')
        await writing
      } finally {
        await blocker.end()
      }
      await a!.cluster!.unlock()
      assert.equal((await a!.changesSince(0, 10)).head, 1)
    })
  })

  it('refuse a second lock() while the turn is held or being taken', async () => {
    await withNodes(1, async ([a]) => {
      await a!.cluster!.lock(5_000, 0, 0)
      await assert.rejects(a!.cluster!.lock(5_000, 0, 0), /while the write turn is held/)
      await a!.cluster!.unlock()
      const first = a!.cluster!.lock(5_000, 0, 0)
      await assert.rejects(a!.cluster!.lock(5_000, 0, 0), /while the write turn is held/)
      await first
      await a!.cluster!.unlock()
    })
  })

  it('refuse a write without the lock while lock() is under way, and keep that turn', async () => {
    await withNodes(2, async ([a, b], schema) => {
      await a!.cluster!.lock(5_000, 0, 0)
      // B's first lock: its connection is still being opened when the write comes.
      const waiting = b!.cluster!.lock(5_000, 0, 10)
      await assert.rejects(
        b!.write(batch([commit(1, [record('k', 'b', 1)])])),
        /write\(\) without lock\(\) while the write turn is held or being taken/,
      )
      assert.equal(await settlesWithin(waiting, 300), false, 'B got the turn while A held it')
      await a!.cluster!.unlock()
      assert.equal((await waiting).head, 0)
      const holder = await turnHolder(schema)
      assert.ok(holder !== undefined, 'B holds the turn it was granted')
      await b!.cluster!.unlock()
      assert.equal(await turnHolder(schema), undefined)
      // One turn connection per node, none left over holding anything.
      const connections = await sql(
        `SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1`,
        [`dataspace node schema=${schema} %`],
      )
      assert.equal(connections.length, 2)
    })
  })

  it("set the server's TCP keepalive of the turn's connection to seconds", async (t) => {
    await withNodes(1, async ([a], schema) => {
      await a!.cluster!.lock(5_000, 0, 0)
      try {
        const pid = await turnHolder(schema)
        const [row] = await sql<{ port: number }>(
          'SELECT client_port AS port FROM pg_stat_activity WHERE pid = $1',
          [pid],
        )
        const server = Number(new URL(POSTGRES_URL).port || 5432)
        let timer = serverKeepaliveTicks(server, row!.port)
        // Just after an answer the socket may wait for its ACK (the retransmit timer) first.
        for (let i = 0; i < 20 && timer === Infinity; i++) {
          await sleep(100)
          timer = serverKeepaliveTicks(server, row!.port)
        }
        if (timer === undefined) {
          // Only a database on another host hides its socket from this /proc/net/tcp. In CI it
          // is on this host (127.0.0.1), so there the test must run, not skip.
          assert.equal(process.env.CI, undefined, "the server's socket is not in /proc/net/tcp")
          t.skip(
            "the server's socket is not in this host's /proc/net/tcp (PostgreSQL elsewhere); it runs in CI",
          )
          return
        }
        // The keepalive timer of the server's socket, in clock ticks (100 a second): due within
        // tcp_keepalives_idle (10 s), not PostgreSQL's default of the system's 2 hours.
        assert.ok(timer <= 100 * 60, `keepalive due in ${timer} ticks`)
      } finally {
        await a!.cluster!.unlock()
      }
    })
  })

  it('time out waiting for the turn with Unavailable, and can take it later', async () => {
    await withNodes(2, async ([a, b], schema) => {
      await a!.cluster!.lock(5_000, 0, 0)
      const started = Date.now()
      await assert.rejects(b!.cluster!.lock(300, 0, 0), (error: unknown) => {
        assert.ok(error instanceof Unavailable, String(error))
        assert.match(
          error.message,
          new RegExp(`write turn of schema "${schema}" was not granted within 300 ms`),
        )
        return true
      })
      assert.ok(Date.now() - started < 3_000, `timed out after ${Date.now() - started} ms`)
      await a!.cluster!.unlock()
      assert.equal((await b!.cluster!.lock(5_000, 0, 0)).head, 0)
      await b!.cluster!.unlock()
    })
  })

  it("give the turn to another node when the holder's lock connection dies", async () => {
    await withNodes(2, async ([a, b], schema) => {
      await a!.cluster!.lock(5_000, 0, 0)
      const pid = await turnHolder(schema)
      assert.ok(pid !== undefined)
      const waiting = b!.cluster!.lock(5_000, 0, 10)
      assert.equal(await settlesWithin(waiting, 200), false)
      await sql('SELECT pg_terminate_backend($1)', [pid])
      assert.equal((await waiting).head, 0)
      assert.notEqual(await turnHolder(schema), pid)
      // A's turn is gone with its connection: giving it back does nothing, and never rejects.
      await a!.cluster!.unlock()
      await b!.cluster!.unlock()
      // A takes the turn again, on a new connection.
      assert.equal((await a!.cluster!.lock(5_000, 0, 0)).head, 0)
      const again = await turnHolder(schema)
      assert.ok(again !== undefined && again !== pid)
      await a!.cluster!.unlock()
    })
  })

  it('give up on a turn whose answer never comes (a silent network), and take it later', async () => {
    const proxy = await TcpProxy.start(Number(new URL(POSTGRES_URL).port || 5432))
    const url = new URL(POSTGRES_URL)
    url.host = new URL(proxy.url).host
    try {
      await withNodes(
        1,
        async ([a]) => {
          assert.equal((await a!.cluster!.lock(5_000, 0, 0)).head, 0)
          await a!.cluster!.unlock()
          proxy.mute()
          const started = Date.now()
          // PostgreSQL grants it at once, but the answer is lost: the client's guard ends the wait
          // (and the connection, which frees the lock) after timeoutMs + queryTimeoutMs.
          await assert.rejects(a!.cluster!.lock(200, 0, 0), (error: unknown) => {
            assert.ok(error instanceof Unavailable, String(error))
            assert.match(error.message, /did not answer the request for the write turn/)
            return true
          })
          const took = Date.now() - started
          assert.ok(took >= 400 && took < 3_000, `gave up after ${took} ms`)
          proxy.cut()
          assert.equal((await a!.cluster!.lock(5_000, 0, 0)).head, 0)
          await a!.cluster!.unlock()
        },
        { url: url.toString(), queryTimeoutMs: 300 },
      )
    } finally {
      proxy.cut()
      await proxy.close()
    }
  })

  it('refuse a batch whose revision another node stored first (Conflict)', async () => {
    await withNodes(2, async ([a, b]) => {
      await a!.write(batch([commit(1, [record('k', 'a', 1)])]))
      await assert.rejects(
        b!.write(batch([commit(1, [record('k', 'b', 1)])])),
        (error: unknown) => {
          assert.ok(error instanceof Conflict, String(error))
          assert.match(
            error.message,
            /does not follow the stored revision 1 \(another node wrote first\)/,
          )
          return true
        },
      )
      const page = await b!.changesSince(0, 10)
      assert.deepEqual(page.trimmed === false && page.commits.map((c) => c.changes[0]?.id), ['a'])
    })
  })

  it('recognise a retry of a batch stored before another node’s batch (its answer was lost)', async () => {
    await withNodes(2, async ([a, b]) => {
      // A's COMMIT went through but its answer was lost; B wrote next; A sends the batch again.
      const mine = batch(
        [commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'a2', 2)])],
        'run-a',
      )
      await a!.write(mine)
      await b!.write(batch([commit(3, [record('k', 'b', 3)])], 'run-b'))
      await a!.write(mine)
      const page = await b!.changesSince(0, 10)
      assert.deepEqual(page.trimmed === false && page.commits.map((c) => c.changes[0]?.id), [
        'a',
        'a2',
        'b',
      ])
      // Another batch at those revisions is still a conflict, not a retry.
      await assert.rejects(a!.write(batch([commit(2, [record('k', 'x', 2)])], 'run-a')), Conflict)
      await assert.rejects(a!.write(batch([commit(2, [record('k', 'x', 2)])], 'run-c')), Conflict)
    })
  })

  it('recognise a retry of a batch whose last commit is empty (a refused write’s stand-in)', async () => {
    await withNodes(2, async ([a, b]) => {
      const mine = batch([commit(1, [record('k', 'a', 1)]), commit(2, [])], 'run-a')
      await a!.write(mine)
      await b!.write(batch([commit(3, [record('k', 'b', 3)])], 'run-b'))
      await a!.write(mine)
      const page = await b!.changesSince(0, 10)
      assert.deepEqual(page.trimmed === false && page.commits.map((c) => c.changes[0]?.id), [
        'a',
        undefined,
        'b',
      ])
    })
  })

  it('recognise a retry of a batch whose commits left the feed (trimmed)', async () => {
    await withNodes(
      2,
      async ([a, b]) => {
        const mine = batch(
          [commit(1, [record('k', 'a', 1)]), commit(2, [record('k', 'a2', 2)])],
          'run-a',
        )
        await a!.write(mine)
        await b!.write(batch([commit(3, [record('k', 'b', 3)])], 'run-b'))
        await b!.write(batch([commit(4, [record('k', 'b2', 4)])], 'run-b'))
        assert.equal((await b!.trimFeed()).floor, 3)
        await a!.write(mine)
        assert.equal((await b!.changesSince(3, 10)).head, 4)
        await assert.rejects(a!.write(batch([commit(2, [record('k', 'x', 2)])], 'run-a')), Conflict)
      },
      { feedMaxRevisions: 1, feedTrimIntervalMs: Infinity },
    )
  })

  it('takes the shared schema lock back after its connection died, before the next write', async () => {
    const errors: Error[] = []
    await withNodes(
      1,
      async ([a], schema) => {
        const name = `dataspace cluster node pid=${process.pid} %`
        const killed = await sql(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`,
          [name],
        )
        assert.equal(killed.length, 1)
        await until(
          async () =>
            (await sql(`SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1`, [name]))
              .length === 0,
          5_000,
          'the lock connection gone',
        )
        // Let the node hear its connection's end.
        await sleep(200)
        await a!.write(batch([commit(1, [record('k', 'a', 1)])]))
        assert.ok(errors.length > 0, 'the lost lock reported')
        // Held again, shared: a single-node writer is still refused.
        const single = postgresBackend({ url: POSTGRES_URL, schema })
        try {
          await assert.rejects(single.open(), /in use by dataspace cluster nodes/)
        } finally {
          await single.close()
        }
      },
      { onError: (error) => errors.push(error) },
    )
  })
})
