// Read replicas: one writer `dataspace serve` and two `dataspace serve --follow` processes on one
// PostgreSQL schema. A client on each follower watches the `config` kind while a client on the
// writer changes it; both followers see the writer's events, at the writer's revisions, in the
// same order. A write sent to a follower is refused with 503 `Unavailable`.
//   npx tsx examples/read-replicas/main.ts
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { connect } from '../../src/client/index.js'
import { Unavailable } from '../../src/index.js'
import type { WatchEvent } from '../../src/index.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const database =
  process.env.DATASPACE_EXAMPLE_POSTGRES_URL ??
  process.env.DATASPACE_TEST_POSTGRES_URL ??
  'postgres://postgres@127.0.0.1:5432/test'
const schema = `ds_example_replicas_${process.pid}`
const backend = new URL(database)
backend.searchParams.set('schema', schema)

// `dataspace serve` from this checkout, on 127.0.0.1 (its default host).
const SERVE = ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--host', '127.0.0.1']

// A stuck example must not hang a terminal or a test run: give up, loudly, after 30 s.
const children: ChildProcess[] = []
setTimeout(() => {
  console.error('read-replicas: timed out')
  process.exit(1)
}, 30_000).unref()
// However this process ends (the timeout, a crash, Ctrl-C, a test's SIGTERM), no server it
// started outlives it: `exit` handlers run synchronously, so the servers are killed there.
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(1))

/** Starts `dataspace serve` on a free port of 127.0.0.1; resolves to its URL once it listens. */
async function serve(follow: boolean): Promise<{ child: ChildProcess; url: string }> {
  const args = ['--port', '0', '--backend', backend.toString(), '--log-level', 'warn']
  if (follow) args.push('--follow')
  const child = spawn(process.execPath, [...SERVE, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  // Keep reading stdout after the line, so the child never writes into a closed pipe.
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /dataspace listening on (http:\/\/\S+)\n/.exec(out)
      if (match?.[1] !== undefined) resolve(match[1])
    })
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) before listening`)))
  })
  return { child, url }
}

async function dropSchema(): Promise<void> {
  const db = new pg.Client({ connectionString: database })
  await db.connect()
  try {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await db.end()
  }
}

type Config = { value: unknown }
const CHANGES = 5

/** Connects to a follower and watches `config`; `seen` resolves after CHANGES events. */
async function watchOn(name: string, url: string) {
  const client = await connect(url, { name })
  const events = client.watch<Config>('config')[Symbol.asyncIterator]()
  const first = (await events.next()).value as WatchEvent<Config> // a watch starts with a snapshot
  if (first.type === 'snapshot') console.log(`${name}: watching config from r${first.revision}`)
  const seen = (async () => {
    const lines: string[] = []
    while (lines.length < CHANGES) {
      const next = await events.next()
      if (next.done === true) break
      const event = next.value
      if (event.type !== 'asserted' && event.type !== 'retracted') continue
      const { id, data } = event.record
      const value = event.type === 'asserted' ? `=${JSON.stringify(data.value)}` : ''
      const line = `r${event.revision} ${event.type} ${id}${value}`
      console.log(`${name}: ${line}`)
      lines.push(line)
    }
    return lines
  })()
  // Awaited later; a failure meanwhile must not be an unhandled rejection (it ends the run).
  seen.catch(() => undefined)
  return { client, url, seen }
}

try {
  // The writer first: it creates the schema the followers read.
  const writer = await serve(false)
  const [f1, f2] = await Promise.all([serve(true), serve(true)])
  console.log(`schema ${schema}: writer ${writer.url}, followers ${f1.url} ${f2.url}`)

  const replicas = await Promise.all([watchOn('follower-1', f1.url), watchOn('follower-2', f2.url)])
  const admin = await connect(writer.url, { name: 'admin' })
  // Ownerless records: configuration outlives the client that wrote it.
  const put = async (id: string, value: unknown) => {
    const record = await admin.session.assert('config', id, { value }, { owner: null })
    console.log(`writer: r${record.revision} asserted ${id}=${JSON.stringify(value)}`)
  }
  await put('log-level', 'info')
  await put('max-connections', 100)
  await put('log-level', 'debug')
  await put('feature.search', true)
  await admin.session.retract('config', 'max-connections')
  console.log('writer: retracted max-connections')

  const [a, b] = await Promise.all([replicas[0].seen, replicas[1].seen])
  const same = a.length === CHANGES && JSON.stringify(a) === JSON.stringify(b)
  console.log(`both followers saw the same ${a.length} events in the same order: ${same}`)
  if (!same) process.exitCode = 1

  // Writes belong to the writer: a follower refuses them, over the WebSocket and over HTTP.
  const follower = replicas[0]
  const ready = (await (await fetch(`${follower.url}/readyz`)).json()) as { role: string }
  console.log(`follower-1 /readyz role: ${ready.role}`)
  const write = follower.client.session.assert('config', 'log-level', { value: 'trace' })
  const answer = await write.then(
    () => 'accepted (it should not have)',
    (error: unknown) => (error instanceof Unavailable ? `refused: ${error.code}` : error),
  )
  console.log(`follower-1, a client's write: ${String(answer)}`)
  if (answer !== 'refused: Unavailable') process.exitCode = 1
  const opened = await fetch(`${follower.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'curl' }),
  })
  const { session } = (await opened.json()) as { session: string }
  const refused = await fetch(`${follower.url}/v1/records/config/log-level`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'dataspace-session': session },
    body: JSON.stringify({ data: { value: 'trace' } }),
  })
  const { error } = (await refused.json()) as { error: { code: string; message: string } }
  console.log(`PUT on follower-1: ${refused.status} ${error.code}: ${error.message}`)

  await Promise.all([admin.close(), ...replicas.map((r) => r.client.close())])
} finally {
  // Every server process by its pid; each shuts down gracefully on SIGTERM and exits 0.
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const [code] = (await exited) as [number | null]
      console.log(`server pid ${child.pid} stopped (exit ${code})`)
      if (code !== 0) process.exitCode = 1
    }),
  )
  await dropSchema().catch((error: unknown) =>
    console.error(`could not drop ${schema}: ${String(error)}`),
  )
}
