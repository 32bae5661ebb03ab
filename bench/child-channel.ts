/**
 * A bench child process driven over IPC, both sides: the parent forks a module of its own with
 * `--import tsx` and sends one request at a time; the child answers each with one message. The
 * cluster benches run their follower and node dataspaces this way, so that each has its own event
 * loop and connections, as a separate `dataspace serve` would.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { stopChild } from './lib.js'

interface Message {
  readonly type: string
}

/** The parent's side: one request at a time, each answered by a message of a known type. */
export class ChildChannel<In extends Message, Out extends Message> {
  readonly #name: string
  readonly #child: ChildProcess
  readonly #exited: Promise<void>

  private constructor(name: string, child: ChildProcess) {
    this.#name = name
    this.#child = child
    this.#exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  }

  /** Forks `moduleUrl` with `env` added, and resolves once the child said `ready`. */
  static async fork<In extends Message, Out extends Message>(
    name: string,
    moduleUrl: string,
    env: Readonly<Record<string, string>>,
  ): Promise<ChildChannel<In, Out>> {
    const child = fork(fileURLToPath(moduleUrl), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const channel = new ChildChannel<In, Out>(name, child)
    await channel.next('ready')
    return channel
  }

  /** The child's next message, which must be of `type`. */
  next<T extends Out['type']>(type: T): Promise<Extract<Out, { type: T }>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void =>
        reject(new Error(`${this.#name} exited (${code}) before "${type}"`))
      this.#child.once('exit', onExit)
      this.#child.once('message', (message: Out) => {
        this.#child.off('exit', onExit)
        if (message.type === type) resolve(message as Extract<Out, { type: T }>)
        else reject(new Error(`${this.#name}: expected ${type}, got ${message.type}`))
      })
    })
  }

  /** Sends `message` and resolves with the answer, which must be of `type`. */
  request<T extends Out['type']>(message: In, type: T): Promise<Extract<Out, { type: T }>> {
    const answer = this.next(type)
    this.#child.send(message)
    return answer
  }

  /** Asks the child to stop with `message`, killing it by its pid after 5 s (bench/lib.ts). */
  stop(message: In): Promise<void> {
    return stopChild(this.#child, this.#exited, message)
  }
}

/**
 * The child's side: hands every request to `handle` (whose answer is sent back when it returns
 * one), exits with the parent, and says `ready`. A request that throws ends the child, code 1.
 */
export function answerParent<In extends Message, Out extends Message>(
  name: string,
  handle: (message: In) => Promise<Out | undefined>,
): void {
  process.on('message', (message: In) => {
    handle(message).then(
      (answer) => void (answer === undefined ? undefined : process.send?.(answer)),
      (error: unknown) => {
        console.error(`${name}:`, error)
        process.exit(1)
      },
    )
  })
  process.on('disconnect', () => process.exit(0))
  process.send?.({ type: 'ready' })
}
