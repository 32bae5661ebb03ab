import assert from 'node:assert/strict'
import type { AssertPredicate } from 'node:assert'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend } from '../../src/backends/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { after, afterEach, describe } from 'node:test'
import { openDataspace } from '../../src/index.js'
import type { DataspaceApi, Stream } from '../../src/index.js'
import { connect } from '../../src/client/index.js'
import type { DataspaceClient } from '../../src/client/index.js'

/** Where a contract suite runs: the engine in process (`local`), or a client of a real server process. */
export type Target = 'local' | 'remote'

/** The backends a local run uses; a remote run uses a memory server. */
export type BackendName = 'memory' | 'sqlite' | 'postgres'

/** What a contract test gets. */
export interface Contract {
  readonly target: Target
  /** The backend under the dataspace (`memory` for remote runs). */
  readonly backend: BackendName
  /** A fresh, empty dataspace (closed after the test). */
  open(options?: { historySize?: number }): Promise<DataspaceApi>
  /** Another handle on the same dataspace: the same object in memory, a second client remotely. */
  peer(ds: DataspaceApi): Promise<DataspaceApi>
  /**
   * Waits until every event caused by the writes made so far has reached the watchers: at once
   * in memory (the engine queues them at commit time), after a round trip and a short pause
   * remotely (events travel on the same connection, but are pumped independently of answers).
   */
  settle(ds: DataspaceApi): Promise<void>
}

/**
 * Registers `body` once per target: `[memory]`, `[sqlite]` and `[postgres]` run the engine in
 * process over each backend, `[remote]` runs a client of a real server process — one suite,
 * several factories, as Kysely runs one suite against every dialect. The remote server is a
 * separate OS process (test/contract/server-process.ts), started once per test file.
 * PostgreSQL runs when it answers (always in CI); elsewhere its suite is skipped, saying why.
 */
export function contract(title: string, body: (c: Contract) => void): void {
  for (const variant of ['memory', 'sqlite', 'postgres', 'remote'] as const) {
    const skip = variant === 'postgres' ? postgresSkip : false
    describe(`${title} [${variant}]`, { skip }, () => {
      const cleanups: (() => Promise<void>)[] = []
      afterEach(async () => {
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
      })
      if (variant === 'remote') {
        remoteSuites++
        // The server process ends with the last remote suite of the file.
        after(() => {
          if (--remoteSuites === 0) shared?.end()
        })
        body(remoteContract(cleanups))
      } else {
        body(localContract(variant, cleanups))
      }
    })
  }
}

function localContract(backend: BackendName, cleanups: (() => Promise<void>)[]): Contract {
  return {
    target: 'local',
    backend,
    async open(options) {
      const ds = await openDataspace({ ...options, backend: await freshBackend(backend, cleanups) })
      cleanups.push(() => ds.close())
      return ds
    },
    async peer(ds) {
      return ds
    },
    async settle(ds) {
      // A read is released once the current revision is durable (docs/design.md, the commit
      // path's Release step), and so is every event up to it: after that and one more turn,
      // what the commits caused has arrived.
      await ds.get('$settle', 'x')
      await new Promise((resolve) => setImmediate(resolve))
    },
  }
}

const urls = new WeakMap<DataspaceApi, string>()

function remoteContract(cleanups: (() => Promise<void>)[]): Contract {
  const client = async (url: string): Promise<DataspaceClient> => {
    const c = await connect(url, { name: 'contract' })
    urls.set(c, url)
    cleanups.push(() => c.close())
    return c
  }
  return {
    target: 'remote',
    backend: 'memory',
    async open(options) {
      const { url } = (await serverProcess().command(
        options === undefined ? 'open' : `open ${JSON.stringify(options)}`,
      )) as { url: string }
      cleanups.push(async () => {
        await serverProcess().command(`close ${url}`)
      })
      return client(url)
    },
    async peer(ds) {
      const url = urls.get(ds)
      if (url === undefined) throw new Error('peer() needs a dataspace from open()')
      return client(url)
    },
    async settle(ds) {
      await ds.get('$settle', 'x')
      await new Promise((resolve) => setTimeout(resolve, 30))
    },
  }
}

interface ServerProcess {
  command(line: string): Promise<unknown>
  end(): void
}

let shared: ServerProcess | undefined
let remoteSuites = 0

function serverProcess(): ServerProcess {
  if (shared !== undefined) return shared
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/contract/server-process.ts'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk))
  const waiting: ((answer: unknown) => void)[] = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    waiting.shift()?.(JSON.parse(line))
  })
  shared = {
    end() {
      child.stdin.end()
    },
    command(line) {
      return new Promise((resolve, reject) => {
        waiting.push((answer) => {
          const error = (answer as { error?: string }).error
          if (error === undefined) resolve(answer)
          else reject(new Error(error))
        })
        child.stdin.write(`${line}\n`)
      })
    },
  }
  return shared
}

/** The next item of a stream, failing after `ms` (network events take a moment to arrive). */
export async function next<T>(stream: Stream<T>, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms)
  })
  try {
    // Shares drained()'s pending read: a stream takes one next() at a time.
    const result = await Promise.race([pending(stream), timeout])
    inFlight.delete(stream)
    if (result.done === true) throw new Error('stream ended')
    return result.value
  } finally {
    clearTimeout(timer)
  }
}

/** Every item the stream has now, after `settle`: what a commit caused, and nothing later. */
export async function drained<T>(c: Contract, ds: DataspaceApi, stream: Stream<T>): Promise<T[]> {
  await c.settle(ds)
  const items: T[] = []
  for (;;) {
    const result = await Promise.race([
      pending(stream),
      new Promise<'idle'>((resolve) => setImmediate(() => resolve('idle'))),
    ])
    if (result === 'idle') return items
    inFlight.delete(stream)
    if (result.done === true) return items
    items.push(result.value)
  }
}

const inFlight = new WeakMap<object, Promise<IteratorResult<unknown, undefined>>>()

function pending<T>(stream: Stream<T>): Promise<IteratorResult<T, undefined>> {
  let p = inFlight.get(stream) as Promise<IteratorResult<T, undefined>> | undefined
  if (p === undefined) {
    p = stream.next()
    inFlight.set(stream, p)
  }
  return p
}

/**
 * A watch the dataspace refuses: in process `watch()` throws synchronously; remotely the refusal
 * comes back from the server, so the stream's first `next()` rejects with the same error.
 */
export async function expectWatchError(
  c: Contract,
  open: () => Stream<unknown>,
  error: AssertPredicate,
): Promise<void> {
  if (c.target === 'local') {
    assert.throws(open, error)
    return
  }
  await assert.rejects(next(open()), error)
}

/**
 * The dataspace's revision now, read from the server (a list is consistent at it). A client's
 * `ds.revision` is only the highest revision it has seen, so contract tests compare this instead.
 */
export async function currentRevision(ds: DataspaceApi): Promise<number> {
  return (await ds.list('$revision')).revision
}

let scratch: string | undefined
let schemas = 0

/** A backend over fresh storage: a temp SQLite file, or a PostgreSQL schema of its own. */
async function freshBackend(
  name: BackendName,
  cleanups: (() => Promise<void>)[],
): Promise<Backend | 'memory'> {
  if (name === 'memory') return 'memory'
  if (name === 'sqlite') {
    scratch ??= mkdtempSync(join(tmpdir(), 'ds-contract-'))
    return sqliteBackend({ path: join(scratch, `${process.pid}-${++schemas}.db`) })
  }
  const schema = `ds_contract_${process.pid}_${++schemas}`
  cleanups.push(() => dropSchema(schema))
  return postgresBackend({ url: POSTGRES_URL, schema })
}

after(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
})
