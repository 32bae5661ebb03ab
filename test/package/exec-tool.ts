import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

/** What one finished tool run did (`code` is `null` when it was killed, e.g. by its timeout). */
export interface ToolResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Where and how long a tool runs; `env` adds to this process's environment. */
export interface ToolOptions {
  readonly cwd: string
  readonly env?: Record<string, string>
  /** Killed (SIGTERM) after this many ms, so a hung `npm` cannot hang the suite. */
  readonly timeout?: number
}

/** Runs `file ARGS` to completion (npm, npx, node, …) and collects its output. */
export function execTool(
  file: string,
  args: readonly string[],
  options: ToolOptions,
): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        timeout: options.timeout ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/** Starts `file ARGS` in the background with piped stdout and stderr; the caller stops it. */
export function spawnTool(
  file: string,
  args: readonly string[],
  options: Omit<ToolOptions, 'timeout'>,
): ChildProcess {
  return spawn(file, [...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}
