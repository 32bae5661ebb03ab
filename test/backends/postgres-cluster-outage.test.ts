// A cluster node cut off from PostgreSQL while it writes (docs/cluster.md, "The write turn"),
// again and again: its turn lock dies with its connection and the other node takes the turn
// and writes. Whatever the cut hit — a turn being taken, a batch in flight, a COMMIT whose answer
// was lost (the retry is recognised by its batch id), a batch another node's write overtook
// (the store refuses it: the node starts over, its writers are told "not applied") — nothing
// acknowledged on either node is lost, nothing told "not applied" is stored, the other node's
// writes always go through, and both nodes and the cut node's watcher end equal to the store.
// (Losing the turn is made certain, against an in-memory store, in test/engine/cluster.test.ts.)
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { openDataspace } from '../../src/index.js'
import type { Dataspace, DataspaceRecord, Watch } from '../../src/index.js'
import { sleep, TcpProxy, until } from '../client/helpers.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const schema = `ds_cluster_outage_${process.pid}`
after(() => (postgresSkip === false ? dropSchema(schema) : undefined))

function ids(records: readonly DataspaceRecord[]): string[] {
  return records.map((record) => record.id).sort()
}

/** Reads `watch` until its view (snapshot + events) is at `revision`; returns the view. */
async function viewAt(watch: Watch, revision: number): Promise<string[]> {
  const view = new Map<string, DataspaceRecord>()
  let at = -1
  const deadline = Date.now() + 10_000
  while (at < revision) {
    let timer: NodeJS.Timeout | undefined
    const { value, done } = await Promise.race([
      watch.next(),
      new Promise<never>((_, reject) => {
        const left = deadline - Date.now()
        timer = setTimeout(
          () => reject(new Error(`the watch stopped at ${at}, not ${revision}`)),
          left,
        )
      }),
    ]).finally(() => clearTimeout(timer))
    assert.ok(!done, 'watch ended')
    if (value.type === 'reset') view.clear()
    else if (value.type === 'snapshot') {
      view.clear()
      for (const record of value.records) view.set(record.id, record)
      at = value.revision
    } else if (value.type === 'asserted') {
      view.set(value.record.id, value.record)
      at = value.revision
    } else if (value.type === 'retracted') {
      view.delete(value.record.id)
      at = value.revision
    }
  }
  return ids([...view.values()])
}

describe(
  'cluster nodes: one cut off from PostgreSQL while it writes',
  { skip: postgresSkip },
  () => {
    it(
      'loses only its own unwritten writes, starts over, and nothing acknowledged is lost',
      { timeout: 60_000 },
      async () => {
        const target = new URL(POSTGRES_URL)
        const proxy = await TcpProxy.start(Number(target.port || 5432))
        const proxied = new URL(POSTGRES_URL)
        proxied.host = new URL(proxy.url).host
        const warnings: string[] = []
        const log = { warn: (message: string) => void warnings.push(message) }
        const open = (url: string): Promise<Dataspace> =>
          openDataspace({
            backend: postgresBackend({ url, schema, cluster: true, onError: () => {} }),
            durableTimeoutMs: 20_000,
            followPollMs: 50,
            log,
          })
        await dropSchema(schema)
        const a = await open(proxied.toString())
        const b = await open(POSTGRES_URL)
        let stop = false
        try {
          const watch = a.watch('load')
          const writer = a.process('writer')
          const acked: string[] = []
          const notApplied: string[] = []
          const other: string[] = []
          // A alone writes, in 8 lanes: it holds the turn nearly all the time.
          const lanes = Array.from({ length: 8 }, async (_, lane) => {
            for (let i = 0; !stop; i++) {
              const id = `a${lane}-${i}`
              try {
                await writer.assert('load', id, { i }, { owner: null })
                acked.push(id)
              } catch (error) {
                if (/not applied/.test((error as Error).message)) notApplied.push(id)
                else other.push(`${id}: ${String(error)}`)
              }
            }
          })
          for (let cut = 0; cut < 5; cut++) {
            const before = acked.length
            await until(async () => acked.length >= before + 50, 10_000, 'A writes')
            // Cut A off while it writes; B writes meanwhile: the turn is B's now.
            proxy.down()
            await b.process('b').assert('load', `b${cut}`, {}, { owner: null })
            await sleep(100)
            proxy.up()
          }
          const resumed = acked.length
          await until(
            async () => acked.length >= resumed + 50,
            20_000,
            'A writes after starting over',
          )
          stop = true
          await Promise.all(lanes)
          assert.deepEqual(other, [], 'no other failure')

          const head = (await b.process('marker').assert('load', 'zz', {}, { owner: null }))
            .revision
          await until(async () => a.revision >= head, 10_000, 'A follows B')
          const stored = new Set(ids((await b.list('load')).items))
          const lost = acked.filter((id) => !stored.has(id))
          assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged writes lost`)
          const ghosts = notApplied.filter((id) => stored.has(id))
          assert.deepEqual(ghosts, [], 'writes told "not applied" are not in the store')
          assert.deepEqual(ids((await a.list('load')).items), [...stored].sort())
          // A's watcher (started over with the store if A lost its turn) never kept a write that
          // was not stored.
          assert.deepEqual(await viewAt(watch, head), [...stored].sort())
          await watch.return()
        } finally {
          // The lanes first: closing exits the writer, and a lane would then spin on its refusals.
          // And the database back: a node closes once what it staged is written.
          stop = true
          proxy.up()
          await Promise.all([a.close(), b.close()])
          await proxy.close()
        }
      },
    )
  },
)
