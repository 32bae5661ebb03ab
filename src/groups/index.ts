/**
 * Process groups with Erlang/OTP `pg` semantics, as records of kind `$group.member`.
 * @module
 */
export { ProcessGroups } from './process-groups.js'
export { GROUP_MEMBER_KIND } from '../model/groups.js'
export type * from '../model/groups.js'
