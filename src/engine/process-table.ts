import { InvalidArgument, ProcessExited } from '../errors/index.js'
import { checkText } from '../model/validate.js'
import { LocalProcess } from './process.js'
import type { MailboxBounds, ProcessHost } from './process.js'

/**
 * The process table: the live processes of this node by pid, and the pid counter. Pids are
 * `<node>/<name>#<n>` with `n` never reused, not even across restarts of a durable store.
 */
export class ProcessTable {
  readonly #node: string
  readonly #host: ProcessHost
  readonly #mailbox: MailboxBounds
  readonly #processes = new Map<string, LocalProcess>()
  #pidCounter = 0
  /** Mailbox drops of processes that have exited (the live ones count their own). */
  #droppedMailbox = 0

  constructor(node: string, host: ProcessHost, mailbox: MailboxBounds) {
    this.#node = node
    this.#host = host
    this.#mailbox = mailbox
  }

  /** A new process with the next pid. */
  create(name: string): LocalProcess {
    checkProcessName(name)
    return this.register(`${this.#node}/${name}#${++this.#pidCounter}`, name)
  }

  /** A new process with a pid the caller chose (see `Engine.processWithId`). */
  createWithId(id: string, name: string): LocalProcess {
    checkProcessName(name)
    if (typeof id !== 'string' || !this.#mayHave(id) || id.length > 400) {
      throw new InvalidArgument(`pid must start with "${this.#node}/"`)
    }
    checkText('pid', id)
    if (this.#processes.has(id)) throw new InvalidArgument(`pid ${id} is already a live process`)
    return this.register(id, name)
  }

  /**
   * Whether `id` is a pid this node may hand out: one of its own, or a child (`<pid>.<n>`) of a
   * live process here — a session another node opened and this one took over keeps its pids.
   */
  #mayHave(id: string): boolean {
    if (id.startsWith(`${this.#node}/`)) return true
    const dot = id.lastIndexOf('.')
    return dot > 0 && this.isAlive(id.slice(0, dot))
  }

  /** Adds a process with a known pid, unchecked (start-up restores those storage kept). */
  register(id: string, name: string): LocalProcess {
    const proc = new LocalProcess(this.#host, id, name, this.#mailbox)
    this.#processes.set(id, proc)
    return proc
  }

  /** New pids must not repeat `pid` (one a previous run handed out). */
  reserve(pid: string): void {
    const n = Number(/#(\d+)/.exec(pid)?.[1] ?? 0)
    if (n > this.#pidCounter) this.#pidCounter = n
  }

  get(pid: string): LocalProcess | undefined {
    return this.#processes.get(pid)
  }

  has(pid: string): boolean {
    return this.#processes.has(pid)
  }

  isAlive(pid: string): boolean {
    return this.#processes.get(pid)?.alive === true
  }

  /** The live process `pid`; `ProcessExited` otherwise. */
  check(pid: string): LocalProcess {
    const proc = this.#processes.get(pid)
    if (proc === undefined || !proc.alive)
      throw new ProcessExited(`process ${pid} is not alive in this dataspace`, pid)
    return proc
  }

  /** Removes an exited process (its records are already retracted). */
  forget(proc: LocalProcess): void {
    this.#processes.delete(proc.id)
    this.#droppedMailbox += proc.droppedTotal
  }

  values(): Iterable<LocalProcess> {
    return this.#processes.values()
  }

  get size(): number {
    return this.#processes.size
  }

  /** Messages dropped by full mailboxes, over every process that ever lived here. */
  get droppedMessages(): number {
    let dropped = this.#droppedMailbox
    for (const proc of this.#processes.values()) dropped += proc.droppedTotal
    return dropped
  }
}

function checkProcessName(name: unknown): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new InvalidArgument('process name must be a non-empty string of at most 200 characters')
  }
  // Names are stored with kept processes (the server's sessions).
  checkText('process name', name)
}
