// `dataspace serve --cluster` (docs/server.md, "Cluster nodes"; docs/cluster.md): three real
// node processes on one fresh PostgreSQL schema, one started with DATASPACE_CLUSTER=1. Each says
// `role: 'node'` (start log, /readyz) and sees the other two live; `assert` succeeds on every
// node and every node lists the same records; a CLI watch on one node sees an assert made on
// another; a single-node `serve` on the schema is refused, naming the cluster; and once one node
// is SIGKILLed the other two keep writing, and reap its session once its lease runs out
// (docs/cluster.md, "Sessions in the store"). SIGTERM keeps a node's sessions in the store until
// their leases run out (then the others reap them) and removes its row.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { dropSchema, POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'
import type { NodeView } from '../../src/server/index.js'
import { connect } from '../../src/client/index.js'
import { until } from '../client/helpers.js'
import { exitCode, OutputReader, runCli, spawnCli, startServe } from './helpers.js'
import type { ServeProcess } from './helpers.js'

const schema = `ds_serve_cluster_${process.pid}`

interface Node {
  readonly name: string
  readonly serve: ServeProcess
  /** Everything the process wrote to stderr (its JSON log) so far. */
  stderr(): string
}

async function startNode(name: string, backend: string, viaEnv: boolean): Promise<Node> {
  const serve = viaEnv
    ? await startServe(['--backend', backend], { DATASPACE_CLUSTER: '1' })
    : await startServe(['--backend', backend, '--cluster'])
  let stderr = ''
  serve.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  return { name, serve, stderr: () => stderr }
}

/** The JSON log lines of `text` (stderr), parsed. */
function logLines(text: string): { msg: string; role?: string; backend?: string }[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; role?: string; backend?: string })
}

async function ok(url: string, args: readonly string[]): Promise<string> {
  const result = await runCli(url, args)
  assert.equal(result.code, 0, `${args.join(' ')} on ${url}: ${result.stderr}`)
  return result.stdout
}

/**
 * `list task -o json`'s items as canonical JSON (object keys sorted): a node that replicated a
 * record reads its data back from PostgreSQL's `jsonb`, which reorders keys, while the node that
 * wrote it keeps the writer's order (docs/semantics.md, "object key order aside").
 */
async function listJson(url: string): Promise<string> {
  const page = JSON.parse(await ok(url, ['list', 'task', '-o', 'json'])) as { items: unknown }
  return JSON.stringify(page.items, (_, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  )
}

async function readyz(url: string): Promise<{
  status: number
  body: { ready: boolean; role: string; cluster: { live?: number } }
}> {
  const res = await fetch(`${url}/readyz`)
  return { status: res.status, body: (await res.json()) as never }
}

/** Every node in `nodes` lists the same records, and their ids pass `want`. */
async function converged(
  nodes: readonly Node[],
  want: (ids: readonly string[]) => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  let last: string[] = []
  try {
    await until(
      async () => {
        last = await Promise.all(nodes.map((n) => listJson(n.serve.url)))
        const items = JSON.parse(last[0]!) as { id: string }[]
        return last.every((list) => list === last[0]) && want(items.map((r) => r.id))
      },
      timeoutMs,
      `${nodes.map((n) => n.name).join(', ')} list the same records`,
    )
  } catch (error) {
    // Say how they differ: which records one node has and another lacks, or lists otherwise.
    const maps = last.map(
      (list) =>
        new Map((JSON.parse(list) as { id: string }[]).map((r) => [r.id, JSON.stringify(r)])),
    )
    const lines = nodes.map((node, i) => {
      const mine = maps[i]!
      const other = maps[(i + 1) % maps.length]!
      const only = [...mine.keys()].filter((id) => !other.has(id))
      const unlike = [...mine.keys()].filter(
        (id) => other.has(id) && other.get(id) !== mine.get(id),
      )
      return `${node.name}: ${mine.size} records, only here ${JSON.stringify(only)}, unlike ${unlike
        .slice(0, 3)
        .map((id) => mine.get(id))
        .join(' ')}`
    })
    throw new Error(`${(error as Error).message}\n${lines.join('\n')}`, { cause: error })
  }
}

/** Same ids, in any order. */
function exactly(expected: readonly string[]): (ids: readonly string[]) => boolean {
  return (ids) => JSON.stringify([...ids].sort()) === JSON.stringify([...expected].sort())
}

/** Writes ownerless records into one server, four at a time (loadWriter). */
interface Load {
  /** The ids the server answered, in the order of the answers. */
  readonly acknowledged: string[]
  /** Why the load ended: the first failed write, or `stopped`. */
  readonly ended: Promise<string>
  /** Ends the load after the writes under way. */
  stop(): Promise<string>
}

/** Writes `task` records named `PREFIX-LANE-I` into the server at `url` until a write fails. */
async function loadWriter(url: string, prefix: string): Promise<Load> {
  const opened = await fetch(`${url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'load' }),
  })
  assert.equal(opened.status, 201)
  const { session } = (await opened.json()) as { session: string }
  const acknowledged: string[] = []
  let stopped = false
  const lane = async (lane: number): Promise<string> => {
    for (let i = 0; !stopped; i++) {
      const id = `${prefix}-${lane}-${i}`
      try {
        const res = await fetch(`${url}/v1/records/task/${id}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'dataspace-session': session },
          body: JSON.stringify({ data: { lane, i }, owner: null }),
          signal: AbortSignal.timeout(10_000),
        })
        const text = await res.text()
        if (res.status !== 200) return `${id}: ${res.status} ${text}`
        acknowledged.push(id)
      } catch (error) {
        return `${id}: ${(error as Error).message}`
      }
    }
    return 'stopped'
  }
  const ended = Promise.all([0, 1, 2, 3].map(lane)).then((why) =>
    why.every((w) => w === 'stopped') ? 'stopped' : why.find((w) => w !== 'stopped')!,
  )
  return {
    acknowledged,
    ended,
    stop() {
      stopped = true
      return ended
    },
  }
}

describe('dataspace serve --cluster: three nodes on one schema', { skip: postgresSkip }, () => {
  const backend = new URL(POSTGRES_URL)
  backend.searchParams.set('schema', schema)
  const nodes: Node[] = []
  let a: Node, b: Node, c: Node

  before(async () => {
    // All three at once on the fresh schema, as an orchestrator starts them: they race to
    // create and migrate it.
    const started = await Promise.allSettled([
      startNode('A', backend.toString(), false),
      startNode('B', backend.toString(), false),
      startNode('C', backend.toString(), true),
    ])
    for (const node of started) if (node.status === 'fulfilled') nodes.push(node.value)
    for (const node of started) if (node.status === 'rejected') throw node.reason
    ;[a, b, c] = nodes as [Node, Node, Node]
  })

  after(async () => {
    for (const node of nodes) await node.serve.stop('SIGKILL')
    if (postgresSkip === false) await dropSchema(schema)
  })

  it(
    'each node says role node, is ready, and sees three live nodes',
    { timeout: 60_000 },
    async () => {
      for (const node of nodes) {
        await until(
          () => node.stderr().includes('"server started"'),
          5_000,
          `${node.name} start log`,
        )
        const started = logLines(node.stderr()).find((l) => l.msg === 'server started')
        assert.equal(started?.role, 'node', node.stderr())
        const opened = logLines(node.stderr()).find((l) => l.msg === 'dataspace opened')
        assert.match(opened?.backend ?? '', /\(cluster node\)$/)
      }
      for (const node of nodes) {
        await until(
          async () => (await readyz(node.serve.url)).body.cluster.live === 3,
          15_000,
          `${node.name}: cluster.live 3`,
        )
        const ready = await readyz(node.serve.url)
        assert.equal(ready.status, 200, JSON.stringify(ready.body))
        assert.equal(ready.body.ready, true)
        assert.equal(ready.body.role, 'node')
      }
      const members = (
        JSON.parse(await ok(c.serve.url, ['nodes', '-o', 'json'])) as { nodes: NodeView[] }
      ).nodes
      assert.equal(members.length, 3, JSON.stringify(members))
      assert.deepEqual(members.map((m) => m.address).sort(), nodes.map((n) => n.serve.url).sort())
      assert.deepEqual(members.map((m) => m.pid).sort(), nodes.map((n) => n.serve.child.pid).sort())
      assert.ok(members.every((m) => m.live))
      assert.deepEqual(
        members.filter((m) => m.self).map((m) => m.address),
        [c.serve.url],
      )
    },
  )

  it('takes writes on every node, and every node lists them all', { timeout: 60_000 }, async () => {
    const written = await Promise.all(
      nodes.map((node, i) =>
        runCli(node.serve.url, ['assert', 'task', `t${node.name}`, JSON.stringify({ n: i })]),
      ),
    )
    for (const result of written) assert.equal(result.code, 0, result.stderr)
    await converged(nodes, exactly(['tA', 'tB', 'tC']))
  })

  it('a watch on node C sees an assert made on node A', { timeout: 60_000 }, async () => {
    const watch = spawnCli(['watch', 'task', '-o', 'json'], { DATASPACE_URL: c.serve.url })
    try {
      const events = new OutputReader(watch)
      await events.next(/"type":"snapshot"[^\n]*\n/)
      await ok(a.serve.url, ['assert', 'task', 'fromA', '{"on":"A"}'])
      const [line] = await events.next(/[^\n]*"type":"asserted"[^\n]*\n/)
      const event = JSON.parse(line) as { type: string; record: { id: string; data: unknown } }
      assert.equal(event.record.id, 'fromA')
      assert.deepEqual(event.record.data, { on: 'A' })
    } finally {
      if (watch.exitCode === null && watch.signalCode === null) watch.kill('SIGTERM')
      assert.equal(await exitCode(watch), 0)
    }
  })

  it(
    'refuses a single-node serve on the schema, naming the cluster',
    { timeout: 60_000 },
    async () => {
      const single = spawnCli(['serve', '--port', '0', '--backend', backend.toString()])
      let stderr = ''
      single.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      let stdout = ''
      single.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      const timer = setTimeout(() => single.kill('SIGKILL'), 20_000)
      const code = await exitCode(single)
      clearTimeout(timer)
      assert.equal(code, 1, stderr)
      assert.equal(stdout, '', 'it never listened')
      const lines = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'))
      assert.equal(lines.length, 1, stderr)
      assert.match(lines[0]!, /^error: Unavailable: /)
      assert.ok(lines[0]!.includes(`"${schema}"`), stderr)
      assert.match(
        lines[0]!,
        /in use by dataspace cluster nodes \(held by dataspace cluster node pid=(\d+)/,
      )
      const holder = Number(/cluster node pid=(\d+)/.exec(lines[0]!)![1])
      assert.ok(
        nodes.some((n) => n.serve.child.pid === holder),
        `the holder ${holder} is one of the nodes`,
      )
      assert.match(lines[0]!, /serve --cluster/)
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
      // The cluster did not notice.
      await ok(b.serve.url, ['assert', 'task', 'afterRefusal', '{}'])
    },
  )

  it(
    'keeps writing on the other two nodes after one is SIGKILLed mid-write, and reaps its session',
    { timeout: 60_000 },
    async () => {
      // A record owned by a session on B, with a 2 s lease in the store.
      const opened = await fetch(`${b.serve.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'doomed', ttl: 2_000 }),
      })
      assert.equal(opened.status, 201)
      const { session } = (await opened.json()) as { session: string }
      const held = await fetch(`${b.serve.url}/v1/records/task/heldByB`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'dataspace-session': session },
        body: JSON.stringify({ data: {} }),
      })
      assert.equal(held.status, 200, await held.text())
      await converged([a, c], (ids) => ids.includes('heldByB'))
      // B is killed while writes stream into it, so it likely dies holding the write turn or in
      // the middle of its COMMIT: PostgreSQL frees both with its connections.
      const [loadA, loadB, loadC] = await Promise.all([
        loadWriter(a.serve.url, 'A'),
        loadWriter(b.serve.url, 'B'),
        loadWriter(c.serve.url, 'C'),
      ])
      await until(() => loadB.acknowledged.length >= 20, 15_000, '20 writes on B')
      await b.serve.stop('SIGKILL')
      await loadB.ended
      // A and C go on writing: 20 more acknowledged on each after B died.
      const [sinceA, sinceC] = [loadA.acknowledged.length, loadC.acknowledged.length]
      await until(
        () => loadA.acknowledged.length >= sinceA + 20 && loadC.acknowledged.length >= sinceC + 20,
        8_000,
        '20 more writes on A and on C after B died',
      )
      assert.equal(await loadA.stop(), 'stopped')
      assert.equal(await loadC.stop(), 'stopped')
      const alive = [a, c]
      // And through the CLI (runCli gives each call 10 s).
      for (const node of alive)
        await ok(node.serve.url, ['assert', 'task', `after${node.name}`, '{}'])
      // Nothing B acknowledged is lost; what it had in flight may or may not have landed. Its
      // session's lease ran out with nobody to renew it: A or C reaped it, and its record.
      const expected = ['tA', 'tB', 'tC', 'fromA', 'afterRefusal', 'afterA', 'afterC']
      await converged(
        alive,
        (ids) =>
          [...expected, ...loadA.acknowledged, ...loadB.acknowledged, ...loadC.acknowledged].every(
            (id) => ids.includes(id),
          ) && !ids.includes('heldByB'),
      )
      for (const node of alive) {
        const ready = await readyz(node.serve.url)
        assert.equal(ready.status, 200, JSON.stringify(ready.body))
      }
    },
  )

  it(
    'a client of a SIGKILLed node resumes its session on another node, owning what it owned',
    { timeout: 60_000 },
    async () => {
      const d = await startNode('D', backend.toString(), false)
      nodes.push(d)
      const client = await connect([d.serve.url, a.serve.url], {
        name: 'roamer',
        ttl: 10_000,
        backoff: { initialMs: 20, maxMs: 200 },
      })
      try {
        const pid = client.session.id
        await client.session.assert('task', 'roaming', { n: 1 })
        await converged([a], (ids) => ids.includes('roaming'))
        const killed = Date.now()
        await d.serve.stop('SIGKILL')
        // Answered by A: the client reconnected there and A took the session over.
        await client.session.assert('task', 'roamed', { n: 2 })
        const failoverMs = Date.now() - killed
        assert.equal(client.session.id, pid, 'the same pid')
        for (const id of ['roaming', 'roamed']) {
          const record = JSON.parse(await ok(a.serve.url, ['get', 'task', id, '-o', 'json'])) as {
            owner: string
          }
          assert.equal(record.owner, pid, `${id} is still the session's`)
        }
        console.log(`failover after SIGKILL: ${failoverMs} ms to the next answered call`)
      } finally {
        await client.close()
      }
      // Its session ended with the client: what it owned goes.
      await converged([a], (ids) => !ids.includes('roaming') && !ids.includes('roamed'))
    },
  )

  it(
    'stops a node gracefully on SIGTERM: its sessions are reaped when their leases run out, its row goes',
    { timeout: 60_000 },
    async () => {
      const members = (
        JSON.parse(await ok(a.serve.url, ['nodes', '-o', 'json'])) as { nodes: NodeView[] }
      ).nodes
      const idOf = (node: Node): string | undefined =>
        members.find((m) => m.pid === node.serve.child.pid)?.id
      const leaving = [idOf(a), idOf(c)]
      assert.ok(
        leaving.every((id) => id !== undefined),
        JSON.stringify(members),
      )
      // A record owned by a session on C: C's shutdown keeps the session in the store (as a
      // single server keeps it for its next start), and once its lease (10 s) runs out, A
      // reaps it: the record is retracted.
      const hold = spawnCli(['assert', 'task', 'held', '{}', '--hold', '-o', 'json'], {
        DATASPACE_URL: c.serve.url,
      })
      try {
        await new OutputReader(hold).next(/"id": "held"/)
        await converged([a, c], (ids) => ids.includes('held'))
        assert.equal(await c.serve.stop('SIGTERM'), 0, c.stderr())
        // Its lease (10 s) plus the reaper's period, with room for a slow machine.
        await converged([a], (ids) => !ids.includes('held'), 30_000)
      } finally {
        hold.kill('SIGKILL')
        await exitCode(hold)
      }
      assert.equal(await a.serve.stop('SIGTERM'), 0, a.stderr())
      // B's row stays until it is pruned (10 heartbeats without a beat); A's and C's are gone.
      const rows = await sql<{ id: string }>(`SELECT id FROM "${schema}".nodes`)
      assert.deepEqual(
        rows.filter((r) => leaving.includes(r.id)),
        [],
      )
    },
  )
})
