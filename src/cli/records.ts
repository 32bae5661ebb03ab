import { arg, integerFlag, stringFlag, usageError } from './command.js'
import type { Command, CommandContext } from './command.js'
import { path } from './http-client.js'
import { print, RECORD_COLUMNS, text } from './output.js'
import type { WireRecord } from './output.js'

const SELECTOR_OPTIONS = {
  id: { type: 'string' },
  fields: { type: 'string' },
  labels: { type: 'string' },
  owner: { type: 'string' },
} as const

/** `get KIND ID`: one record, or `NotFound`. */
export const getCommand: Command = {
  name: 'get',
  usage: 'get KIND ID [-o json]',
  summary: 'show one record',
  arity: [2, 2],
  async run(ctx) {
    const record = (await ctx.client.request(
      'GET',
      path('/v1/records', arg(ctx, 0), arg(ctx, 1)),
    )) as WireRecord
    print(ctx.io, ctx.mode, record, [record], RECORD_COLUMNS)
  },
}

/** `list KIND [selectors] [--limit N] [--continue T]`: one page of matching records. */
export const listCommand: Command = {
  name: 'list',
  usage:
    'list KIND [--id GLOB] [--fields SEL] [--labels SEL] [--owner PID] [--limit N] [--continue T] [-o json]',
  summary: 'list records matching selectors',
  options: { ...SELECTOR_OPTIONS, limit: { type: 'string' }, continue: { type: 'string' } },
  arity: [1, 1],
  async run(ctx) {
    const query = { ...selectors(ctx), limit: integerFlag(ctx, 'limit', listCommand) }
    const page = (await ctx.client.request('GET', path('/v1/records', arg(ctx, 0)), {
      query: { ...query, continue: stringFlag(ctx.flags.continue) },
    })) as { items: WireRecord[]; revision: number; continue?: string }
    print(ctx.io, ctx.mode, page, page.items, RECORD_COLUMNS)
    if (ctx.mode === 'table' && page.continue !== undefined) {
      ctx.io.stderr(`more records: add --continue ${page.continue}`)
    }
    if (page.items.length === 0 && ctx.flags.continue === undefined) {
      await noteUnknownKind(ctx, arg(ctx, 0))
    }
  },
}

/**
 * An empty list of a kind the server has never heard of is most likely a typo: say so on stderr
 * (stdout stays the answer; the exit code stays 0, since an empty answer is a correct one).
 */
async function noteUnknownKind(ctx: CommandContext, kind: string): Promise<void> {
  let plan: { unknownKind?: boolean }
  try {
    plan = (await ctx.client.request('GET', path('/v1/explain', kind))) as typeof plan
  } catch {
    // Only a hint: a server that cannot explain (an older one, a token without the right)
    // has already given the answer that matters.
    return
  }
  if (plan.unknownKind === true) {
    ctx.io.stderr(`no kind "${kind}" is defined and no records of it exist`)
  }
}

/** `watch KIND [selectors]`: the snapshot, then one line per event until interrupted. */
export const watchCommand: Command = {
  name: 'watch',
  usage:
    'watch KIND [--id GLOB] [--fields SEL] [--labels SEL] [--owner PID] [--from-revision N] [-o json]',
  summary: 'stream a snapshot and every change (Ctrl-C ends)',
  options: { ...SELECTOR_OPTIONS, 'from-revision': { type: 'string' } },
  arity: [1, 1],
  async run(ctx) {
    const query = {
      ...selectors(ctx),
      fromRevision: integerFlag(ctx, 'from-revision', watchCommand),
    }
    const events = ctx.client.events(path('/v1/watch', arg(ctx, 0)), query, ctx.signal)
    for await (const { data } of events) {
      if (ctx.mode === 'json') ctx.io.stdout(JSON.stringify(data))
      else for (const line of watchLines(data as WatchEventData)) ctx.io.stdout(line)
    }
  },
}

/**
 * `assert KIND ID JSON`: writes the record without an owner (it outlives the command), or with
 * `--hold` owned by a session the command keeps alive until interrupted.
 */
export const assertCommand: Command = {
  name: 'assert',
  usage: 'assert KIND ID JSON [--labels k=v,…] [--ttl MS] [--if-revision N] [--hold] [-o json]',
  summary: 'write a record (ownerless; --hold: owned until Ctrl-C)',
  options: {
    labels: { type: 'string' },
    ttl: { type: 'string' },
    'if-revision': { type: 'string' },
    hold: { type: 'boolean' },
  },
  arity: [3, 3],
  async run(ctx) {
    const body = {
      data: parseJson(arg(ctx, 2)),
      labels: parseLabels(ctx),
      ttl: integerFlag(ctx, 'ttl', assertCommand),
      ifRevision: integerFlag(ctx, 'if-revision', assertCommand),
      ...(ctx.flags.hold === true ? {} : { owner: null }),
    }
    const target = path('/v1/records', arg(ctx, 0), arg(ctx, 1))
    await ctx.client.withSession(async (session) => {
      const record = (await ctx.client.request('PUT', target, { body, session })) as WireRecord
      print(ctx.io, ctx.mode, record, [record], RECORD_COLUMNS)
      if (ctx.flags.hold === true) await holdSession(ctx, session)
    })
  },
}

/** `retract KIND ID`: retracts an ownerless record; a record another process owns is `NotOwner`. */
export const retractCommand: Command = {
  name: 'retract',
  usage: 'retract KIND ID [--if-revision N] [-o json]',
  summary: 'retract an ownerless record',
  options: { 'if-revision': { type: 'string' } },
  arity: [2, 2],
  async run(ctx) {
    const query = { ifRevision: integerFlag(ctx, 'if-revision', retractCommand) }
    const target = path('/v1/records', arg(ctx, 0), arg(ctx, 1))
    const record = (await ctx.client.withSession((session) =>
      ctx.client.request('DELETE', target, { query, session }),
    )) as WireRecord
    print(ctx.io, ctx.mode, record, [record], RECORD_COLUMNS)
  },
}

interface WatchEventData {
  readonly type: string
  readonly revision?: number
  readonly records?: readonly WireRecord[]
  readonly record?: WireRecord
  readonly reason?: string
  readonly from?: string
  readonly kind?: string
  readonly id?: string
  readonly message?: unknown
}

/** Human lines for one watch event: `TYPE rev=N KIND/ID owner=PID DATA`. */
function watchLines(event: WatchEventData): string[] {
  const rec = (r: WireRecord): string => `${r.kind}/${r.id} owner=${text(r.owner)} ${text(r.data)}`
  switch (event.type) {
    case 'snapshot':
      return [
        `snapshot rev=${event.revision} records=${event.records?.length ?? 0}`,
        ...(event.records ?? []).map((r) => `  ${rec(r)}`),
      ]
    case 'asserted':
      return event.record === undefined
        ? []
        : [`asserted rev=${event.revision} ${rec(event.record)}`]
    case 'retracted':
      return [
        `retracted rev=${event.revision} ${event.record?.kind}/${event.record?.id} reason=${event.reason}`,
      ]
    case 'message':
      return [`message ${event.kind}/${event.id} from=${event.from} ${text(event.message)}`]
    default:
      return [`${event.type} ${JSON.stringify(event)}`]
  }
}

function selectors(ctx: CommandContext): Record<string, string | undefined> {
  return {
    id: stringFlag(ctx.flags.id),
    fields: stringFlag(ctx.flags.fields),
    labels: stringFlag(ctx.flags.labels),
    owner: stringFlag(ctx.flags.owner),
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown
  } catch {
    throw usageError(assertCommand, `JSON argument is not valid JSON: ${raw}`)
  }
}

function parseLabels(ctx: CommandContext): Record<string, string> | undefined {
  const raw = stringFlag(ctx.flags.labels)
  if (raw === undefined) return undefined
  const labels: Record<string, string> = {}
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw usageError(assertCommand, `--labels wants k=v pairs, got "${pair}"`)
    labels[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return labels
}

/** Renews the session until the command is interrupted; the caller then ends it. */
async function holdSession(ctx: CommandContext, session: string): Promise<void> {
  ctx.io.stderr('holding the record; Ctrl-C retracts it')
  const heartbeat = path('/v1/sessions', session, 'heartbeat')
  while (!ctx.signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000)
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
    })
    if (!ctx.signal.aborted) await ctx.client.request('POST', heartbeat)
  }
}
