import { arg, stringFlag } from './command.js'
import type { Command } from './command.js'
import { path } from './http-client.js'
import { print } from './output.js'

/** `groups SCOPE GROUP`: the group's members, one row per membership (with multiplicity). */
export const groupsCommand: Command = {
  name: 'groups',
  usage: 'groups SCOPE GROUP [-o json]',
  summary: "list a process group's members",
  arity: [2, 2],
  async run(ctx) {
    const body = (await ctx.client.request(
      'GET',
      path('/v1/groups', arg(ctx, 0), arg(ctx, 1)),
    )) as { members: string[] }
    print(ctx.io, ctx.mode, body, body.members, [{ header: 'PID', cell: (pid: string) => pid }])
  },
}

interface NameEntry {
  readonly name: string
  readonly pid: string
  readonly fence: number
  readonly meta?: unknown
}

/** `names [GLOB]`: registered names and the pids holding them. */
export const namesCommand: Command = {
  name: 'names',
  usage: 'names [GLOB] [-o json]',
  summary: 'list registered names',
  arity: [0, 1],
  async run(ctx) {
    const glob = stringFlag(ctx.args[0])
    const body = (await ctx.client.request('GET', '/v1/names', { query: { glob } })) as {
      names: NameEntry[]
    }
    print(ctx.io, ctx.mode, body, body.names, [
      { header: 'NAME', cell: (n: NameEntry) => n.name },
      { header: 'PID', cell: (n: NameEntry) => n.pid },
      { header: 'FENCE', cell: (n: NameEntry) => n.fence },
      { header: 'META', cell: (n: NameEntry) => n.meta },
    ])
  },
}
