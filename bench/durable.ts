/**
 * Durable write throughput: acknowledged asserts per second with 1, 10 and 100 concurrent
 * writers on the SQLite and PostgreSQL backends. Group commit puts every write of a turn into
 * one transaction; the baseline, measured in the same run, is the same database written the
 * straightforward way: one durable transaction per write. etcd's single-node figure (5–7k
 * writes/s; etcd is not installed on this machine) is shown as a reference, not measured.
 *
 * @example
 * //   node --expose-gc --import tsx bench/durable.ts           (about 1 minute)
 * //   node --expose-gc --import tsx bench/durable.ts --quick   (about 15 s)
 * //   DATASPACE_TEST_POSTGRES_URL=postgres://… node --import tsx bench/durable.ts --only=postgres
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { sqliteBackend } from '../src/backends/sqlite/index.js'
import { postgresBackend } from '../src/backends/postgres/index.js'
import type { Backend } from '../src/backends/index.js'
import { openDataspace } from '../src/index.js'
import type { Row } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'
import type { ScenarioGroup } from './run-benchmark.js'

const args = benchArgs()
const sizes = { seconds: args.quick ? 1 : 3, writers: [1, 10, 100] }
const ETCD_REFERENCE = 7_000 // the upper end of etcd's single-node figure: the aim is 10× that
const PG_URL = process.env.DATASPACE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const DATA = { pool: 'cpu', node_name: 'n-1', size: 4, status: 'ready', note: 'x'.repeat(120) }

/** Acknowledged asserts/s from `writers` loops, each awaiting its write before the next. */
async function dataspaceRate(backend: Backend, writers: number): Promise<number> {
  const ds = await openDataspace({ backend })
  const proc = ds.process('bench')
  let acked = 0
  let stop = false
  const deadline = Date.now() + sizes.seconds * 1000
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      await proc.assert('bench', `${w}-${i}`, DATA, { owner: null })
      acked++
      if (Date.now() >= deadline) stop = true
    }
  })
  await Promise.all(loops)
  const rate = acked / sizes.seconds
  await ds.close()
  return rate
}

function row(system: string, writers: number, value: number, baseline: number, label: string): Row {
  return {
    group: system,
    scenario: `${writers} writer${writers === 1 ? '' : 's'}, acknowledged asserts/s`,
    value: Math.round(value),
    unit: 'writes/s',
    baseline: { label, value: Math.round(baseline) },
    ratio: value / baseline,
    target: `≥ 10× etcd (${(ETCD_REFERENCE * 10).toLocaleString('en-US')}/s)`,
    met: value >= ETCD_REFERENCE * 10,
    note: `vs etcd reference ${ETCD_REFERENCE}/s: ${(value / ETCD_REFERENCE).toFixed(1)}×`,
  }
}

async function sqliteScenarios(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ds-bench-'))
  const rows: Row[] = []
  try {
    // Baseline: one durable transaction per write (better-sqlite3 is synchronous: writers queue).
    const db = new Database(join(dir, 'naive.db'))
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.exec('CREATE TABLE records (id TEXT PRIMARY KEY, data TEXT NOT NULL)')
    const insert = db.prepare('INSERT INTO records (id, data) VALUES (?, ?)')
    let naive = 0
    const end = Date.now() + sizes.seconds * 1000
    for (let i = 0; Date.now() < end; i++) {
      insert.run(String(i), JSON.stringify(DATA))
      naive++
    }
    db.close()
    const baseline = naive / sizes.seconds
    for (const writers of sizes.writers) {
      const path = join(dir, `ds-${writers}.db`)
      const rate = await dataspaceRate(sqliteBackend({ path }), writers)
      rows.push(row('sqlite', writers, rate, baseline, 'SQLite, one transaction per write'))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}

async function postgresScenarios(): Promise<Row[]> {
  // PostgreSQL allows 100 connections by default; 100 writers share 40 of them.
  const pool = new pg.Pool({ connectionString: PG_URL, max: 40 })
  const rows: Row[] = []
  const schemas: string[] = []
  try {
    await pool.query('SELECT 1')
  } catch (error) {
    await pool.end()
    console.log(`\npostgres skipped: ${PG_URL} does not answer (${(error as Error).message})`)
    return rows
  }
  try {
    for (const writers of sizes.writers) {
      // Baseline: `writers` connections, each INSERT its own autocommitted transaction.
      const table = `bench_naive_${process.pid}_${writers}`
      await pool.query(`CREATE TABLE ${table} (id TEXT PRIMARY KEY, data JSONB NOT NULL)`)
      let naive = 0
      let stop = false
      const deadline = Date.now() + sizes.seconds * 1000
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = 0; !stop; i++) {
            await pool.query(`INSERT INTO ${table} (id, data) VALUES ($1, $2)`, [`${w}-${i}`, DATA])
            naive++
            if (Date.now() >= deadline) stop = true
          }
        }),
      )
      await pool.query(`DROP TABLE ${table}`)
      const schema = `ds_bench_${process.pid}_${writers}`
      schemas.push(schema)
      const rate = await dataspaceRate(postgresBackend({ url: PG_URL, schema }), writers)
      rows.push(
        row(
          'postgres',
          writers,
          rate,
          naive / sizes.seconds,
          `PostgreSQL, ${writers} conn., one txn per write`,
        ),
      )
    }
  } finally {
    for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await pool.end()
  }
  return rows
}

const groups: ScenarioGroup[] = [
  ['sqlite', sqliteScenarios],
  ['postgres', postgresScenarios],
]

await runBenchmark('durable', args, sizes, groups)
