import { arg, integerFlag, stringFlag, usageError } from './command.js'
import type { Command, CommandContext } from './command.js'
import { path } from './http-client.js'
import { print, text } from './output.js'
import type { Column } from './output.js'

interface KvEntry {
  readonly key: string
  readonly value: unknown
  readonly revision: number
  readonly owner: string | null
  readonly expiresAt?: number
}

const ENTRY_COLUMNS: readonly Column<KvEntry>[] = [
  { header: 'KEY', cell: (e) => e.key },
  { header: 'REV', cell: (e) => e.revision },
  { header: 'OWNER', cell: (e) => e.owner },
  { header: 'VALUE', cell: (e) => e.value },
]

const USAGE = {
  get: 'kv get BUCKET [KEY] [--prefix P] [--glob G] [--limit N] [-o json]',
  put: 'kv put BUCKET KEY VALUE [--ttl MS] [--if-revision N] [-o json]',
  delete: 'kv delete BUCKET KEY [--if-revision N] [-o json]',
  watch: 'kv watch BUCKET [--prefix P] [--glob G] [--from-revision N] [-o json]',
} as const

/**
 * `kv get|put|delete|watch BUCKET [KEY] [VALUE]`. `get` without a key lists the bucket. A put's
 * VALUE is JSON when it parses as JSON, otherwise the string itself (`kv put cfg mode fast`).
 */
export const kvCommand: Command = {
  name: 'kv',
  usage: 'kv get|put|delete|watch BUCKET [KEY] [VALUE]',
  summary: 'read, write and watch KV buckets',
  details: [
    ...Object.values(USAGE),
    '',
    'get without KEY lists the bucket. A put VALUE is JSON when it parses as JSON,',
    'otherwise the string itself (kv put cfg mode fast).',
  ],
  options: {
    prefix: { type: 'string' },
    glob: { type: 'string' },
    limit: { type: 'string' },
    ttl: { type: 'string' },
    'if-revision': { type: 'string' },
    'from-revision': { type: 'string' },
  },
  arity: [2, 4],
  async run(ctx) {
    const verb = arg(ctx, 0)
    const bucket = arg(ctx, 1)
    switch (verb) {
      case 'get':
        return ctx.args.length === 2 ? scan(ctx, bucket) : getKey(ctx, bucket)
      case 'put':
        return put(ctx, bucket)
      case 'delete':
        return remove(ctx, bucket)
      case 'watch':
        return watch(ctx, bucket)
      default:
        throw usageError(kvCommand, `unknown kv verb "${verb}"`)
    }
  },
}

function expect(ctx: CommandContext, verb: keyof typeof USAGE, count: number): void {
  if (ctx.args.length !== count) {
    throw usageError({ ...kvCommand, usage: USAGE[verb] }, `kv ${verb}: wrong number of arguments`)
  }
}

async function scan(ctx: CommandContext, bucket: string): Promise<void> {
  const query = {
    prefix: stringFlag(ctx.flags.prefix),
    glob: stringFlag(ctx.flags.glob),
    limit: integerFlag(ctx, 'limit', kvCommand),
  }
  const page = (await ctx.client.request('GET', path('/v1/kv', bucket), { query })) as {
    entries: KvEntry[]
  }
  print(ctx.io, ctx.mode, page, page.entries, ENTRY_COLUMNS)
}

async function getKey(ctx: CommandContext, bucket: string): Promise<void> {
  expect(ctx, 'get', 3)
  const entry = (await ctx.client.request('GET', path('/v1/kv', bucket, arg(ctx, 2)))) as KvEntry
  print(ctx.io, ctx.mode, entry, [entry], ENTRY_COLUMNS)
}

async function put(ctx: CommandContext, bucket: string): Promise<void> {
  expect(ctx, 'put', 4)
  const raw = arg(ctx, 3)
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    value = raw
  }
  const body = {
    value,
    ttl: integerFlag(ctx, 'ttl', kvCommand),
    ifRevision: integerFlag(ctx, 'if-revision', kvCommand),
  }
  const entry = (await ctx.client.request('PUT', path('/v1/kv', bucket, arg(ctx, 2)), {
    body,
  })) as KvEntry
  print(ctx.io, ctx.mode, entry, [entry], ENTRY_COLUMNS)
}

async function remove(ctx: CommandContext, bucket: string): Promise<void> {
  expect(ctx, 'delete', 3)
  const query = { ifRevision: integerFlag(ctx, 'if-revision', kvCommand) }
  const result = (await ctx.client.request('DELETE', path('/v1/kv', bucket, arg(ctx, 2)), {
    query,
  })) as { deleted: boolean }
  if (ctx.mode === 'json') ctx.io.stdout(JSON.stringify(result))
  else ctx.io.stdout(result.deleted ? `deleted ${arg(ctx, 2)}` : `${arg(ctx, 2)} did not exist`)
}

async function watch(ctx: CommandContext, bucket: string): Promise<void> {
  expect(ctx, 'watch', 2)
  const query = {
    prefix: stringFlag(ctx.flags.prefix),
    glob: stringFlag(ctx.flags.glob),
    fromRevision: integerFlag(ctx, 'from-revision', kvCommand),
  }
  const events = ctx.client.events(path('/v1/kv', bucket, 'watch'), query, ctx.signal)
  for await (const { data } of events) {
    const event = data as { type: string; key?: string; value?: unknown; revision?: number }
    if (ctx.mode === 'json') ctx.io.stdout(JSON.stringify(event))
    else if (event.type === 'put') {
      ctx.io.stdout(`put rev=${event.revision} ${event.key} ${text(event.value)}`)
    } else if (event.type === 'delete') ctx.io.stdout(`delete rev=${event.revision} ${event.key}`)
    else ctx.io.stdout(`${event.type} ${JSON.stringify(event)}`)
  }
}
