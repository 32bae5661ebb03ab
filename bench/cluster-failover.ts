/**
 * Failover time on real PostgreSQL (docs/cluster.md, "Client failover"): how long a client's
 * next call waits when the server it is connected to is SIGKILLed.
 *
 * - **Cluster.** Three `dataspace serve --cluster` processes on one fresh schema; a client
 *   `connect([node1, node2, node3])` (10 s lease, reconnect backoff from 20 ms) is on the first,
 *   asserts a record, then that node is SIGKILLed: the time from the kill to the answer of the
 *   client's next assert, which it gets from another node that took its session over (same
 *   pid, checked). A fresh node replaces the killed one before the next round.
 * - **Baseline**, in the same run: one single-node `dataspace serve` on a schema of its own,
 *   SIGKILLed and started again on the same port by a supervisor at once: the client's next
 *   call is answered once the new server listens and the session is resumed from the store.
 *
 * Each round's figure is one kill; the table gives the median and the worst. Aim: < 2 s.
 *
 * @example
 * //   node --import tsx bench/cluster-failover.ts            (about 60 s; npm run bench:cluster-failover)
 * //   node --import tsx bench/cluster-failover.ts --quick    (about 25 s)
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { connect } from '../src/client/index.js'
import { PG_URL } from './cluster-follower.js'
import type { Row } from './lib.js'
import { fmt } from './lib.js'
import { benchArgs, runBenchmark } from './run-benchmark.js'

const args = benchArgs()
const sizes = { rounds: args.quick ? 3 : 8, leaseMs: 10_000 }
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))

interface Serve {
  readonly url: string
  readonly child: ChildProcess
}

/** `dataspace serve` on `port` (0: any) with `extra` flags; resolves once it listens. */
function serve(backend: string, port: number, extra: readonly string[] = []): Promise<Serve> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', '--port', String(port), '--backend', backend, ...extra],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`serve did not listen within 20 s: ${out}`))
    }, 20_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /dataspace listening on (http:\/\/\S+)/.exec(out)
      if (match === null) return
      clearTimeout(timer)
      resolve({ url: match[1]!, child })
    })
    child.once('exit', () => reject(new Error(`serve exited before listening: ${out}`)))
  })
}

/** SIGKILLs `server` (by its pid, which this run started) and waits for it to be gone. */
async function kill(server: Serve): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  const gone = new Promise((resolve) => server.child.once('exit', resolve))
  server.child.kill('SIGKILL')
  await gone
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

function backendOf(schema: string): string {
  const url = new URL(PG_URL)
  url.searchParams.set('schema', schema)
  return url.toString()
}

/** Kill → the answer of the client's next assert, in ms, for each round. */
async function clusterRounds(): Promise<number[]> {
  const schema = `ds_bench_failover_${process.pid}`
  await dropSchema(schema)
  const backend = backendOf(schema)
  const nodes = await Promise.all([0, 1, 2].map(() => serve(backend, 0, ['--cluster'])))
  const times: number[] = []
  try {
    for (let round = 0; round < sizes.rounds; round++) {
      const client = await connect(
        nodes.map((node) => node.url),
        { name: 'roamer', ttl: sizes.leaseMs, backoff: { initialMs: 20, maxMs: 200 } },
      )
      try {
        const pid = client.session.id
        await client.session.assert('bench', `before-${round}`, { round })
        const killed = performance.now()
        await kill(nodes[0]!)
        await client.session.assert('bench', `after-${round}`, { round })
        times.push(performance.now() - killed)
        if (client.session.id !== pid) throw new Error('the session was not resumed: a new pid')
      } finally {
        await client.close()
      }
      // The killed node is replaced; the client's first URL is a live node again.
      nodes.shift()
      nodes.push(await serve(backend, 0, ['--cluster']))
    }
  } finally {
    await Promise.all(nodes.map(kill))
    await dropSchema(schema)
  }
  return times
}

/** The baseline: one single-node server, SIGKILLed and restarted on its port at once. */
async function restartRounds(): Promise<number[]> {
  const schema = `ds_bench_restart_${process.pid}`
  await dropSchema(schema)
  const backend = backendOf(schema)
  const port = await freePort()
  let server = await serve(backend, port)
  const times: number[] = []
  try {
    for (let round = 0; round < sizes.rounds; round++) {
      const client = await connect(server.url, {
        name: 'stayer',
        ttl: sizes.leaseMs,
        backoff: { initialMs: 20, maxMs: 200 },
      })
      try {
        const pid = client.session.id
        await client.session.assert('bench', `before-${round}`, { round })
        const killed = performance.now()
        await kill(server)
        server = await serve(backend, port)
        await client.session.assert('bench', `after-${round}`, { round })
        times.push(performance.now() - killed)
        if (client.session.id !== pid) throw new Error('the session was not resumed: a new pid')
      } finally {
        await client.close()
      }
    }
  } finally {
    await kill(server)
    await dropSchema(schema)
  }
  return times
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}

async function failover(): Promise<Row[]> {
  const restart = await restartRounds()
  const cluster = await clusterRounds()
  const baseline = (value: number) => ({
    label: `single server SIGKILLed and restarted (${fmt(value)} ms)`,
    value,
  })
  const rows: Row[] = []
  for (const [what, pick] of [
    ['median', median],
    ['worst', (values: readonly number[]) => Math.max(...values)],
  ] as const) {
    const value = pick(cluster)
    const base = pick(restart)
    rows.push({
      group: 'failover',
      scenario: `node SIGKILLed → next call answered on another node, ${what} of ${cluster.length}`,
      value,
      unit: 'ms',
      baseline: baseline(base),
      ratio: base / value,
      target: '< 2,000 ms',
    })
  }
  return rows
}

await runBenchmark('cluster-failover', args, sizes, [['failover', failover]])
