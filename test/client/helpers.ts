import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer as createNetServer, Socket } from 'node:net'
import type { AddressInfo, Server as NetServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { DataspaceRecord, Stream, WatchEvent } from '../../src/index.js'
import type { ClientStatus } from '../../src/client/index.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createNetServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/**
 * A TCP proxy on 127.0.0.1 in front of a server: `cut()` destroys every connection through it,
 * `down()` also refuses new ones until `up()`. What a dropped network looks like to a client.
 */
export class TcpProxy {
  readonly #server: NetServer
  readonly #sockets = new Set<Socket>()
  #target: number
  #down = false
  #muted = false
  /** Connections accepted so far. */
  accepted = 0

  private constructor(target: number) {
    this.#target = target
    this.#server = createNetServer((client) => {
      if (this.#down) {
        client.destroy()
        return
      }
      this.accepted++
      const upstream = new Socket()
      this.#track(client)
      this.#track(upstream)
      upstream.connect(this.#target, '127.0.0.1')
      client.pipe(upstream)
      // Server → client goes through `mute()`: a muted proxy delivers calls but loses answers.
      upstream.on('data', (chunk: Buffer) => {
        if (!this.#muted) client.write(chunk)
      })
      const kill = (): void => {
        client.destroy()
        upstream.destroy()
      }
      client.on('error', kill).on('close', kill)
      upstream.on('error', kill).on('close', kill)
    })
  }

  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target)
    proxy.#server.listen(0, '127.0.0.1')
    await once(proxy.#server, 'listening')
    return proxy
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  /** Destroys every open connection (both sides). */
  cut(): void {
    this.#muted = false
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  /** Drops everything the server sends from now on (until `cut()`): answers get lost. */
  mute(): void {
    this.#muted = true
  }

  /** Cuts, and refuses new connections until `up()`. */
  down(): void {
    this.#down = true
    this.cut()
  }

  up(): void {
    this.#down = false
  }

  async close(): Promise<void> {
    this.down()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
  }
}

/** Reads a stream in the background into `items`; `until` waits for a condition on them. */
export class Collector<T> {
  readonly items: T[] = []
  ended = false
  readonly #stream: Stream<T>
  readonly done: Promise<void>

  constructor(stream: Stream<T>) {
    this.#stream = stream
    this.done = (async () => {
      try {
        for await (const item of stream) this.items.push(item)
      } catch {
        // the stream failed: `ended` says so
      }
      this.ended = true
    })()
  }

  async until(check: (items: readonly T[]) => boolean, ms: number, what: string): Promise<void> {
    await until(() => check(this.items), ms, what)
  }

  close(): void {
    this.#stream.close()
  }
}

/** Polls `check` until it is truthy, failing after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`)
    await sleep(10)
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** The records a watch's events describe, by id: what a consumer would materialise. */
export function materialise(events: readonly WatchEvent[]): Map<string, DataspaceRecord> {
  const state = new Map<string, DataspaceRecord>()
  let resetPending = false
  for (const event of events) {
    switch (event.type) {
      case 'snapshot':
        state.clear()
        resetPending = false
        for (const record of event.records) state.set(record.id, record)
        break
      case 'asserted':
        state.set(event.record.id, event.record)
        break
      case 'retracted':
        state.delete(event.record.id)
        break
      case 'reset':
        resetPending = true
        break
      case 'message':
        break
    }
  }
  if (resetPending) state.clear()
  return state
}

/** Status event types in order, for assertions. */
export const types = (items: readonly ClientStatus[]): string[] => items.map((s) => s.type)

/** A child process started with `node --import tsx`, stopped by its pid. */
export interface Child {
  readonly child: ChildProcess
  readonly pid: number
  /** Everything written to stdout so far. */
  stdout(): string
  /** Waits for a stdout line matching `pattern`, failing after `ms` or when the child exits. */
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>
  /** Sends `signal` to the pid and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
}

export function spawnTsx(args: readonly string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not spawn ${args.join(' ')}`)
  let out = ''
  let err = ''
  let exited = child.exitCode !== null
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const exit = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true
      resolve()
    }),
  )
  return {
    child,
    pid,
    stdout: () => out,
    async waitFor(pattern, ms) {
      const deadline = Date.now() + ms
      for (;;) {
        const match = pattern.exec(out)
        if (match !== null) return match
        if (exited) throw new Error(`${args.join(' ')} exited before ${pattern}: ${err}`)
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${ms} ms: ${out} ${err}`)
        await sleep(10)
      }
    },
    async kill(signal = 'SIGKILL') {
      if (!exited) process.kill(pid, signal)
      await exit
    },
  }
}

/**
 * `dataspace serve --port PORT --backend BACKEND` as a child process; resolves once it listens.
 * Memory by default: a restart then loses every session.
 */
export async function startServerProcess(
  port: number,
  backend = 'memory',
): Promise<Child & { url: string }> {
  const child = spawnTsx(['src/cli/main.ts', 'serve', '--port', String(port), '--backend', backend])
  try {
    const [, url] = await child.waitFor(/dataspace listening on (http:\/\/\S+)/, 15_000)
    return { ...child, url: url as string }
  } catch (error) {
    await child.kill()
    throw error
  }
}
