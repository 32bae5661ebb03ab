/**
 * The baseline of the groups benchmark: process groups as a team would write them by hand, a
 * `Map<group, Map<pid, count>>` with per-pid mailboxes (the ADR-026 "Map + Mutex" state). It has
 * the same async, multiset semantics as `ds.groups()` but none of its guarantees: no commit, no
 * revision, no history, no watchers, no liveness check, no auto-leave on exit. There is no mutex:
 * each operation is synchronous on one thread, so a lock would only slow the baseline down, and
 * the baseline should be the fastest honest hand-written version.
 */

/** A message in a hand-written mailbox. */
export interface BaselineMessage {
  readonly from: string
  readonly message: unknown
}

/** Same bound as the dataspace's default `mailboxSize`, so both sides may drop alike. */
const MAILBOX_BOUND = 10_000

/** Hand-written process groups over plain maps; the methods are async like `ProcessGroupsApi`. */
export class MapGroups {
  readonly #groups = new Map<string, Map<string, number>>()
  readonly #mailboxes = new Map<string, BaselineMessage[]>()
  /** Messages dropped because a mailbox was full. */
  dropped = 0

  /** Gives `pid` a mailbox, as `ds.process()` does. */
  spawn(pid: string): void {
    this.#mailboxes.set(pid, [])
  }

  async join(group: string, pid: string): Promise<'ok'> {
    let members = this.#groups.get(group)
    if (members === undefined) this.#groups.set(group, (members = new Map<string, number>()))
    members.set(pid, (members.get(pid) ?? 0) + 1)
    return 'ok'
  }

  async leave(group: string, pid: string): Promise<'ok' | 'not_joined'> {
    const members = this.#groups.get(group)
    const count = members?.get(pid)
    if (members === undefined || count === undefined) return 'not_joined'
    if (count > 1) members.set(pid, count - 1)
    else {
      members.delete(pid)
      // Empty groups do not exist (pg semantics), which also keeps the outer map from growing.
      if (members.size === 0) this.#groups.delete(group)
    }
    return 'ok'
  }

  /** Members with multiplicity, like `members()`. */
  async members(group: string): Promise<string[]> {
    const out: string[] = []
    const members = this.#groups.get(group)
    if (members === undefined) return out
    for (const [pid, count] of members) for (let i = 0; i < count; i++) out.push(pid)
    return out
  }

  /** Sends to each distinct member once; resolves with how many were delivered to. */
  async broadcast(from: string, group: string, message: unknown): Promise<number> {
    const members = this.#groups.get(group)
    if (members === undefined) return 0
    let delivered = 0
    for (const pid of members.keys()) {
      const mailbox = this.#mailboxes.get(pid)
      if (mailbox === undefined) continue
      if (mailbox.length >= MAILBOX_BOUND) this.dropped++
      else {
        mailbox.push({ from, message })
        delivered++
      }
    }
    return delivered
  }

  /** Empties every mailbox (the consumers' side, untimed); returns how many messages it took. */
  drain(): number {
    let taken = 0
    for (const mailbox of this.#mailboxes.values()) {
      taken += mailbox.length
      mailbox.length = 0
    }
    return taken
  }
}

/** A random integer in `[0, n)`. */
export function below(random: () => number, n: number): number {
  return Math.floor(random() * n)
}
