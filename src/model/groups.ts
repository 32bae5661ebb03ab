import type { Json, PidLike, Stream } from './types.js'

/** The built-in kind of group memberships: one record per (scope, group, pid) join. */
export const GROUP_MEMBER_KIND = '$group.member'

/** Per-membership metadata (as syn and Phoenix Presence keep): any JSON value. */
export type MemberMeta = Json

/** One distinct member of a group, with how many times it joined and its metadata. */
export interface MemberWithMeta {
  readonly pid: string
  readonly count: number
  readonly meta: MemberMeta
}

/**
 * Events of a group monitor, keyed on `type`. `pids` carries multiplicity, as Erlang `pg` does:
 * a process that joined three times and exits gives one `leave` with its pid three times.
 */
export type GroupEvent =
  | {
      readonly type: 'snapshot'
      /** Every non-empty group watched, with its members (with multiplicity). */
      readonly groups: Readonly<Record<string, readonly string[]>>
      readonly revision: number
    }
  | {
      readonly type: 'join'
      readonly group: string
      readonly pids: readonly string[]
      readonly revision: number
    }
  | {
      readonly type: 'leave'
      readonly group: string
      readonly pids: readonly string[]
      readonly revision: number
    }
  | {
      readonly type: 'update'
      readonly group: string
      readonly pid: string
      readonly meta: MemberMeta
      readonly revision: number
    }
  /**
   * Start over from the `snapshot` that follows: the monitor fell behind (`overflow`), or a
   * network client reconnected and cannot replay what it missed (`history-gone`).
   */
  | { readonly type: 'reset'; readonly reason: 'overflow' | 'history-gone' }

export type GroupMonitor = Stream<GroupEvent>

/** Erlang/OTP `pg` semantics over records of kind `$group.member`, one scope at a time. */
export interface ProcessGroupsApi {
  readonly scope: string
  /** Joins one pid or a list (with multiplicity); every pid must be a live process. */
  join(group: string, pids: PidLike | readonly PidLike[], meta?: MemberMeta): Promise<'ok'>
  /** Leaves; `not_joined` only when none of the pids were members. */
  leave(group: string, pids: PidLike | readonly PidLike[]): Promise<'ok' | 'not_joined'>
  members(group: string): Promise<string[]>
  localMembers(group: string): Promise<string[]>
  membersWithMeta(group: string): Promise<MemberWithMeta[]>
  updateMeta(group: string, pid: PidLike, meta: MemberMeta): Promise<void>
  whichGroups(): Promise<string[]>
  whichLocalGroups(): Promise<string[]>
  /** A snapshot, then join / leave / update events; closing it guarantees no later events. */
  monitor(group?: string): GroupMonitor
  /** Sends to each distinct member once; resolves with how many were delivered to. */
  broadcast(from: PidLike, group: string, message: unknown): Promise<number>
  broadcastLocal(from: PidLike, group: string, message: unknown): Promise<number>
}
