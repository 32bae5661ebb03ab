import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { DEFAULT_URL, HttpClient, UsageError } from './http-client.js'
import type { CliIo, OutputMode } from './output.js'

type OptionsConfig = NonNullable<ParseArgsConfig['options']>

/** What a command gets: its parsed flags and arguments, where to print, and a server client. */
export interface CommandContext {
  readonly io: CliIo
  readonly args: readonly string[]
  readonly flags: Readonly<Record<string, string | boolean | undefined>>
  readonly mode: OutputMode
  readonly client: HttpClient
  /** Aborted on SIGINT / SIGTERM: long-running commands (watch, serve) end cleanly. */
  readonly signal: AbortSignal
}

/** One subcommand: `usage` is printed by `help` and with usage errors. */
export interface Command {
  readonly name: string
  readonly usage: string
  readonly summary: string
  /** More lines for `COMMAND --help`: flags, environment, verbs. */
  readonly details?: readonly string[]
  readonly options?: OptionsConfig
  /** Positional arguments allowed: `[min, max]`. */
  readonly arity: readonly [number, number]
  run(ctx: CommandContext): Promise<void>
}

const GLOBAL_OPTIONS: OptionsConfig = {
  output: { type: 'string', short: 'o' },
  url: { type: 'string' },
}

/**
 * Parses `argv` (after the command name) for `command`, strictly: an unknown flag or a wrong
 * number of arguments is `InvalidArgument` with the usage line, never ignored.
 */
export function parseCommand(
  command: Command,
  argv: readonly string[],
  io: CliIo,
  signal: AbortSignal,
): CommandContext {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    })
  } catch (error) {
    throw usageError(command, (error as Error).message)
  }
  const positionals = parsed.positionals
  const values = parsed.values as Record<string, string | boolean | undefined>
  const [min, max] = command.arity
  if (positionals.length < min || positionals.length > max) {
    throw usageError(command, `expected ${arityText(min, max)}, got ${positionals.length}`)
  }
  const output = stringFlag(values.output) ?? 'table'
  if (output !== 'table' && output !== 'json') {
    throw usageError(command, `-o must be table or json, not ${output}`)
  }
  const url = stringFlag(values.url) ?? io.env.DATASPACE_URL ?? DEFAULT_URL
  const token = io.env.DATASPACE_TOKEN
  return {
    io,
    args: positionals,
    flags: values,
    mode: output,
    client: new HttpClient(url, token === '' ? undefined : token),
    signal,
  }
}

/** A usage mistake: `InvalidArgument`, with the command's usage appended. */
export function usageError(command: Command, problem: string): UsageError {
  return new UsageError(`${problem} (usage: dataspace ${command.usage})`)
}

/** A string flag's value, or `undefined` when absent. */
export function stringFlag(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

/** A non-negative integer flag (`--limit`, `--ttl`, …), checked before it reaches the server. */
export function integerFlag(
  ctx: CommandContext,
  name: string,
  command: Command,
): number | undefined {
  const raw = stringFlag(ctx.flags[name])
  if (raw === undefined) return undefined
  if (!/^\d+$/.test(raw)) throw usageError(command, `--${name} must be a non-negative integer`)
  return Number(raw)
}

/** The n-th positional argument, which `arity` guarantees is present. */
export function arg(ctx: CommandContext, index: number): string {
  const value = ctx.args[index]
  if (value === undefined) throw new UsageError(`missing argument ${index + 1}`)
  return value
}

function arityText(min: number, max: number): string {
  if (min === max) return `${min} argument${min === 1 ? '' : 's'}`
  return `${min} to ${max} arguments`
}
