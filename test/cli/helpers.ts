import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MAIN = 'src/cli/main.ts'

/** What one CLI child process did. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `dataspace serve` as a real child process on a free port. */
export interface ServeProcess {
  readonly url: string
  readonly child: ChildProcess
  /** Sends `signal` (SIGTERM by default) and resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Spawns `main.ts ARGS` with tsx; the caller reads its streams. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Runs one CLI command to completion against `url`. */
export function runCli(url: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { cwd: ROOT, env: { ...process.env, DATASPACE_URL: url }, timeout: 10_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/**
 * Collects everything `child` writes to stdout from now on; `next(pattern)` waits for the first
 * match after the previous one, so output that arrives between two waits is never lost.
 */
export class OutputReader {
  #text = ''
  #cursor = 0
  #wake: (() => void) | undefined
  #exited = false

  constructor(child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.#text += chunk.toString()
      this.#wake?.()
    })
    child.on('exit', () => {
      this.#exited = true
      this.#wake?.()
    })
  }

  /** The next match of `pattern` after the last one; rejects on exit or after 10 s. */
  async next(pattern: RegExp): Promise<RegExpMatchArray> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const match = pattern.exec(this.#text.slice(this.#cursor))
      if (match !== null) {
        this.#cursor += (match.index ?? 0) + match[0].length
        return match
      }
      if (this.#exited || Date.now() > deadline) {
        throw new Error(`no output matching ${pattern}: ${this.#text.slice(this.#cursor)}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now())
        this.#wake = () => (clearTimeout(timer), resolve())
      })
    }
  }
}

/** Resolves to the exit code once `child` has exited (at once if it already has). */
export async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const [code] = (await once(child, 'exit')) as [number | null]
  return code
}

/** Starts `serve --port 0` (with `env` added) and waits for its listening line. */
export async function startServe(
  args: readonly string[] = ['--backend', 'memory'],
  env: Record<string, string> = {},
): Promise<ServeProcess> {
  const child = spawnCli(['serve', '--port', '0', ...args], env)
  let url: string | undefined
  try {
    ;[, url] = await new OutputReader(child).next(/dataspace listening on (http:\/\/\S+)\n/)
    if (url === undefined) throw new Error('no url in the listening line')
  } catch (error) {
    // A server that never said it listens must not outlive the test that started it.
    child.kill('SIGKILL')
    throw error
  }
  return {
    url,
    child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exitCode(child)
    },
  }
}
