import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { ServerOptions } from '../../src/server/index.js'

/** A server running in a child process: a crash there is observable, not the test's own death. */
export interface ChildServer {
  readonly url: string
  /** Everything the child wrote to stderr so far (stack traces of a crash land here). */
  readonly stderr: () => string
  /** The exit code once the child has exited; `undefined` while it runs. */
  readonly exitCode: () => number | null | undefined
  /** True while the process runs and `/livez` answers 200. */
  alive(): Promise<boolean>
  close(): Promise<void>
}

/** Starts test/server/fixtures/server-child.ts with `options` and waits for its URL. */
export async function startChild(options: Omit<ServerOptions, 'ds'> = {}): Promise<ChildServer> {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/server/fixtures/server-child.ts', JSON.stringify(options)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  let stderr = ''
  let exitCode: number | null | undefined
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code
      resolve()
    }),
  )
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => {
      resolve((JSON.parse(line) as { url: string }).url)
    })
    exited.then(() => reject(new Error(`server child exited ${exitCode}: ${stderr}`)), reject)
  })
  return {
    url,
    stderr: () => stderr,
    exitCode: () => exitCode,
    async alive() {
      if (exitCode !== undefined) return false
      try {
        const res = await fetch(`${url}/livez`, { signal: AbortSignal.timeout(5_000) })
        await res.arrayBuffer()
        return res.status === 200
      } catch {
        return false
      }
    },
    async close() {
      if (exitCode === undefined) {
        child.stdin.end()
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
        await exited
        clearTimeout(timer)
      }
    },
  }
}
