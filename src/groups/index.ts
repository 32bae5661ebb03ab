/**
 * Process groups with Erlang/OTP `pg` semantics, as records of kind `$group.member`.
 * @module
 */
export { GROUP_MEMBER_KIND, ProcessGroups } from './process-groups.js'
export type * from './types.js'
