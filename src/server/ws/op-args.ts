import type { LocalProcess } from '../../engine/index.js'
import { InvalidArgument, ProcessExited } from '../../errors/index.js'
import { authorize } from '../auth.js'
import type { Principal, Right } from '../auth.js'
import { checkOwnPid } from '../request-context.js'
import type { Session } from '../session-table.js'

/**
 * One call's arguments and caller, as operations read them. Arguments come straight off the
 * wire, so every read checks its type, and `pick` copies only named keys: an engine option
 * object never receives a key the client made up (a fake `signal` would otherwise reach the
 * engine).
 */
export class OpArgs {
  readonly #args: Readonly<Record<string, unknown>>
  readonly #op: string
  readonly session: Session
  readonly #principal: Principal | undefined

  constructor(op: string, args: unknown, session: Session, principal: Principal | undefined) {
    if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
      throw new InvalidArgument(`${op}: "args" must be an object`)
    }
    this.#op = op
    this.#args = (args ?? {}) as Record<string, unknown>
    this.session = session
    this.#principal = principal
  }

  /** `Forbidden` unless the caller's token holds `right` on `kind` (always true without auth). */
  require(kind: string, right: Right): void {
    if (this.#principal !== undefined) authorize(this.#principal, kind, right)
  }

  /** A raw argument, unchecked (data, messages, metadata: any JSON). */
  raw(name: string): unknown {
    return this.#args[name]
  }

  string(name: string): string {
    const value = this.#args[name]
    if (typeof value !== 'string') throw this.#bad(name, 'a string')
    return value
  }

  optionalString(name: string): string | undefined {
    return this.#args[name] === undefined ? undefined : this.string(name)
  }

  /** A record id: a string or a number, as the engine takes it. */
  id(name = 'id'): string | number {
    const value = this.#args[name]
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw this.#bad(name, 'a string or a number')
    }
    return value
  }

  /** An options object holding only `keys` (those present), or `{}` when absent. */
  pick(name: string, keys: readonly string[]): Record<string, unknown> {
    const value = this.#args[name]
    if (value === undefined) return {}
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw this.#bad(name, 'an object')
    }
    const picked: Record<string, unknown> = {}
    for (const key of keys) {
      const v = (value as Record<string, unknown>)[key]
      if (v !== undefined) picked[key] = v
    }
    return picked
  }

  /** The kind named by `name`, after checking the caller's `right` on it. */
  kind(right: Right, name = 'kind'): string {
    const kind = this.string(name)
    this.require(kind, right)
    return kind
  }

  /**
   * The session's process (or child) named by `pid`: a connection acts only as its own
   * processes. A pid of the session that has exited is `ProcessExited`.
   */
  process(name = 'pid'): LocalProcess {
    const pid = this.ownPid(name)
    const proc = this.session.processes.get(pid)
    if (proc !== undefined) return proc
    throw new ProcessExited(`process ${pid} has exited`, pid)
  }

  /**
   * A pid argument that must be the session's process or one of its children, alive or not
   * (the facades answer for exited ones as the engine does); any other pid is `Forbidden`.
   */
  ownPid(name = 'pid', value: unknown = this.#args[name]): string {
    if (typeof value !== 'string') throw this.#bad(name, 'a pid')
    return checkOwnPid(this.session, value)
  }

  #bad(name: string, what: string): InvalidArgument {
    return new InvalidArgument(`${this.#op}: "${name}" must be ${what}`)
  }
}
