// ONE table of every operation, with its HTTP and its WebSocket form: the auth matrix
// (auth-matrix.test.ts) runs each row over both transports, with the caller's own pid, another
// session's pid, and a token without the right.
import type { Dataspace, LocalProcess } from '../../src/index.js'

/** An HTTP request of a row; `sse` opens it as an event stream. */
export interface HttpForm {
  readonly method: string
  readonly path: string
  readonly body?: unknown
  readonly sse?: boolean
}

/** One WebSocket call. */
export type WsCall = readonly [op: string, args: Record<string, unknown>]

/**
 * How an operation names who it acts for. `args`: a pid in its arguments (acts as it, joins or
 * leaves it, gives it ownership). `session`: over HTTP, the session of the Dataspace-Session
 * header. `none`: it acts for nobody (reads, and writes of durable data).
 */
export type PidMode = 'args' | 'session' | 'none'

export interface Row {
  readonly op: string
  readonly right: 'read' | 'write' | 'admin'
  /**
   * The HTTP form for a caller whose process is `pid` (`n` makes names unique), or why the
   * operation has no HTTP route.
   */
  readonly http: ((pid: string, n: number) => HttpForm) | string
  readonly httpPid: PidMode
  /** WebSocket calls; the last is the one checked, the ones before it set it up. */
  readonly ws: ((pid: string, n: number) => readonly WsCall[]) | string
  readonly wsPid: PidMode
  /** Set-up in process, acting as the caller's process `p`, before either form runs. */
  readonly setup?: (ds: Dataspace, p: LocalProcess, n: number) => Promise<unknown>
}

const K = 'api.m'
const one = (op: string, args: Record<string, unknown>): readonly WsCall[] => [[op, args]]
const HTTP_SESSIONS = 'sessions are the WebSocket hello and the connection itself'

export const MATRIX: readonly Row[] = [
  // Sessions (HTTP only: a WebSocket's session is its hello)
  {
    op: 'sessions.open',
    right: 'read',
    http: () => ({ method: 'POST', path: '/v1/sessions', body: { name: 'm' } }),
    httpPid: 'none',
    ws: HTTP_SESSIONS,
    wsPid: 'none',
  },
  {
    op: 'sessions.heartbeat',
    right: 'read',
    http: () => ({ method: 'POST', path: '/v1/sessions/:session/heartbeat' }),
    httpPid: 'session',
    ws: HTTP_SESSIONS,
    wsPid: 'none',
  },
  // The dataspace
  {
    op: 'defineKind',
    right: 'admin',
    http: 'kinds are defined in process or over WebSocket',
    httpPid: 'none',
    ws: (_pid, n) => one('defineKind', { kind: `api.def${n}`, options: {} }),
    wsPid: 'none',
  },
  {
    op: 'get',
    right: 'read',
    setup: (_ds, p, n) => p.assert(K, `get${n}`, {}),
    http: (_pid, n) => ({ method: 'GET', path: `/v1/records/${K}/get${n}` }),
    httpPid: 'none',
    ws: (_pid, n) => one('get', { kind: K, id: `get${n}` }),
    wsPid: 'none',
  },
  {
    op: 'list',
    right: 'read',
    http: () => ({ method: 'GET', path: `/v1/records/${K}` }),
    httpPid: 'none',
    ws: () => one('list', { kind: K }),
    wsPid: 'none',
  },
  {
    op: 'explain',
    right: 'read',
    http: () => ({ method: 'GET', path: `/v1/explain/${K}` }),
    httpPid: 'none',
    ws: () => one('explain', { kind: K }),
    wsPid: 'none',
  },
  {
    op: 'watch',
    right: 'read',
    http: () => ({ method: 'GET', path: `/v1/watch/${K}`, sse: true }),
    httpPid: 'none',
    ws: () => one('watch', { kind: K }),
    wsPid: 'none',
  },
  // Processes
  {
    op: 'process.open',
    right: 'read',
    http: 'child processes are WebSocket-only',
    httpPid: 'none',
    ws: (pid, n) => one('process.open', { name: 'child', pid: `${pid}.${n}` }),
    wsPid: 'args',
  },
  {
    op: 'process.exit',
    right: 'read',
    http: 'child processes are WebSocket-only; DELETE /v1/sessions/:id ends a session',
    httpPid: 'none',
    ws: (pid, n) => [
      ['process.open', { name: 'child', pid: `${pid}.${n}` }],
      ['process.exit', { pid: `${pid}.${n}` }],
    ],
    wsPid: 'args',
  },
  {
    op: 'assert',
    right: 'write',
    http: (_pid, n) => ({ method: 'PUT', path: `/v1/records/${K}/a${n}`, body: { data: {} } }),
    httpPid: 'session',
    ws: (pid, n) => one('assert', { pid, kind: K, id: `a${n}`, data: {} }),
    wsPid: 'args',
  },
  {
    op: 'retract',
    right: 'write',
    setup: (_ds, p, n) => p.assert(K, `r${n}`, {}),
    http: (_pid, n) => ({ method: 'DELETE', path: `/v1/records/${K}/r${n}` }),
    httpPid: 'session',
    ws: (pid, n) => one('retract', { pid, kind: K, id: `r${n}` }),
    wsPid: 'args',
  },
  {
    op: 'transact',
    right: 'write',
    http: (_pid, n) => ({
      method: 'POST',
      path: '/v1/transact',
      body: { then: [{ op: 'assert', kind: K, id: `t${n}`, data: {} }] },
    }),
    httpPid: 'session',
    ws: (pid, n) =>
      one('transact', {
        pid,
        request: { then: [{ op: 'assert', kind: K, id: `t${n}`, data: {} }] },
      }),
    wsPid: 'args',
  },
  {
    op: 'claim',
    right: 'write',
    setup: (ds, _p, n) => ds.process('durable').assert(K, `c${n}`, { free: true }, { owner: null }),
    http: (_pid, n) => ({
      method: 'POST',
      path: `/v1/claim/${K}`,
      body: { id: `c${n}`, patch: { free: false } },
    }),
    httpPid: 'session',
    ws: (pid, n) =>
      one('claim', { pid, kind: K, options: { id: `c${n}`, patch: { free: false } } }),
    wsPid: 'args',
  },
  {
    op: 'send',
    right: 'write',
    http: () => ({
      method: 'POST',
      path: '/v1/send',
      body: { target: { kind: K, id: 1 }, message: 1 },
    }),
    httpPid: 'session',
    ws: (pid) => one('send', { pid, target: { kind: K, id: 1 }, message: 1 }),
    wsPid: 'args',
  },
  {
    op: 'monitor',
    right: 'read',
    http: 'monitors are WebSocket-only',
    httpPid: 'none',
    ws: (pid) => one('monitor', { pid, target: 'local/nobody#0' }),
    wsPid: 'args',
  },
  {
    op: 'messages',
    right: 'read',
    http: 'mailboxes are WebSocket-only',
    httpPid: 'none',
    ws: (pid) => one('messages', { pid }),
    wsPid: 'args',
  },
  // Process groups
  {
    op: 'groups.join',
    right: 'write',
    http: (pid, n) => ({ method: 'POST', path: `/v1/groups/m/j${n}/join`, body: { pids: [pid] } }),
    httpPid: 'args',
    ws: (pid, n) => one('groups.join', { scope: 'm', group: `j${n}`, pids: pid }),
    wsPid: 'args',
  },
  {
    op: 'groups.leave',
    right: 'write',
    setup: (ds, p, n) => ds.groups('m').join(`l${n}`, p.id),
    http: (pid, n) => ({ method: 'POST', path: `/v1/groups/m/l${n}/leave`, body: { pids: [pid] } }),
    httpPid: 'args',
    ws: (pid, n) => one('groups.leave', { scope: 'm', group: `l${n}`, pids: [pid] }),
    wsPid: 'args',
  },
  {
    op: 'groups.updateMeta',
    right: 'write',
    setup: (ds, p, n) => ds.groups('m').join(`u${n}`, p.id),
    http: 'member metadata is set over WebSocket',
    httpPid: 'none',
    ws: (pid, n) => one('groups.updateMeta', { scope: 'm', group: `u${n}`, pid, meta: { a: 1 } }),
    wsPid: 'args',
  },
  {
    op: 'groups.members',
    right: 'read',
    http: () => ({ method: 'GET', path: '/v1/groups/m/g' }),
    httpPid: 'none',
    ws: () => one('groups.members', { scope: 'm', group: 'g' }),
    wsPid: 'none',
  },
  ...['localMembers', 'membersWithMeta'].map((name): Row => ({
    op: `groups.${name}`,
    right: 'read',
    http: 'GET /v1/groups/:scope/:group answers members; this one is WebSocket-only',
    httpPid: 'none',
    ws: () => one(`groups.${name}`, { scope: 'm', group: 'g' }),
    wsPid: 'none',
  })),
  ...['whichGroups', 'whichLocalGroups'].map((name): Row => ({
    op: `groups.${name}`,
    right: 'read',
    http: 'WebSocket-only',
    httpPid: 'none',
    ws: () => one(`groups.${name}`, { scope: 'm' }),
    wsPid: 'none',
  })),
  ...['broadcast', 'broadcastLocal'].map((name): Row => ({
    op: `groups.${name}`,
    right: 'write',
    http: 'POST /v1/send with { group } is the HTTP broadcast (row send)',
    httpPid: 'none',
    ws: (pid) => one(`groups.${name}`, { scope: 'm', group: 'g', from: pid, message: 1 }),
    wsPid: 'args',
  })),
  {
    op: 'groups.monitor',
    right: 'read',
    http: () => ({ method: 'GET', path: '/v1/groups/m/monitor', sse: true }),
    httpPid: 'none',
    ws: () => one('groups.monitor', { scope: 'm' }),
    wsPid: 'none',
  },
  // Names
  {
    op: 'names.register',
    right: 'write',
    http: (_pid, n) => ({ method: 'PUT', path: `/v1/names/n${n}`, body: {} }),
    httpPid: 'session',
    ws: (pid, n) => one('names.register', { pid, name: `n${n}` }),
    wsPid: 'args',
  },
  {
    op: 'names.unregister',
    right: 'write',
    setup: (ds, p, n) => ds.names.register(p, `u${n}`),
    http: (_pid, n) => ({ method: 'DELETE', path: `/v1/names/u${n}` }),
    httpPid: 'session',
    ws: (pid, n) => one('names.unregister', { pid, name: `u${n}` }),
    wsPid: 'args',
  },
  {
    op: 'names.whereis',
    right: 'read',
    setup: (ds, p, n) => ds.names.register(p, `w${n}`),
    http: (_pid, n) => ({ method: 'GET', path: `/v1/names/w${n}` }),
    httpPid: 'none',
    ws: (_pid, n) => one('names.whereis', { name: `w${n}` }),
    wsPid: 'none',
  },
  {
    op: 'names.list',
    right: 'read',
    http: () => ({ method: 'GET', path: '/v1/names' }),
    httpPid: 'none',
    ws: () => one('names.list', {}),
    wsPid: 'none',
  },
  {
    op: 'names.watch',
    right: 'read',
    http: 'name watches are WebSocket-only',
    httpPid: 'none',
    ws: () => one('names.watch', {}),
    wsPid: 'none',
  },
  // KV
  {
    op: 'kv.get',
    right: 'read',
    setup: (ds, _p, n) => ds.kv('m').put(`g${n}`, 1),
    http: (_pid, n) => ({ method: 'GET', path: `/v1/kv/m/g${n}` }),
    httpPid: 'none',
    ws: (_pid, n) => one('kv.get', { bucket: 'm', key: `g${n}` }),
    wsPid: 'none',
  },
  {
    op: 'kv.put',
    right: 'write',
    http: (pid, n) => ({ method: 'PUT', path: `/v1/kv/m/p${n}`, body: { value: 1, owner: pid } }),
    httpPid: 'args',
    ws: (pid, n) => one('kv.put', { bucket: 'm', key: `p${n}`, value: 1, options: { owner: pid } }),
    wsPid: 'args',
  },
  {
    op: 'kv.delete',
    right: 'write',
    setup: (ds, _p, n) => ds.kv('m').put(`d${n}`, 1),
    http: (_pid, n) => ({ method: 'DELETE', path: `/v1/kv/m/d${n}` }),
    httpPid: 'none',
    ws: (_pid, n) => one('kv.delete', { bucket: 'm', key: `d${n}` }),
    wsPid: 'none',
  },
  {
    op: 'kv.scan',
    right: 'read',
    http: () => ({ method: 'GET', path: '/v1/kv/m' }),
    httpPid: 'none',
    ws: () => one('kv.scan', { bucket: 'm' }),
    wsPid: 'none',
  },
  {
    op: 'kv.watch',
    right: 'read',
    http: () => ({ method: 'GET', path: '/v1/kv/m/watch', sse: true }),
    httpPid: 'none',
    ws: () => one('kv.watch', { bucket: 'm' }),
    wsPid: 'none',
  },
]
