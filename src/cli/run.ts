import { parseCommand } from './command.js'
import type { Command } from './command.js'
import { CliError, UsageError } from './http-client.js'
import { kvCommand } from './kv.js'
import type { CliIo } from './output.js'
import { assertCommand, getCommand, listCommand, retractCommand, watchCommand } from './records.js'
import { nodesCommand } from './nodes.js'
import { groupsCommand, namesCommand } from './registry.js'
import { serveCommand } from './serve.js'

/** Every subcommand, in the order `help` lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  getCommand,
  listCommand,
  watchCommand,
  assertCommand,
  retractCommand,
  kvCommand,
  groupsCommand,
  namesCommand,
  nodesCommand,
]

/**
 * Runs one CLI invocation and resolves to its exit code. Errors never escape: each becomes one
 * line `error: <code>: <message>` on stderr and exit code 1 (2 for usage mistakes).
 *
 * @example
 * const code = await run(['list', 'api.route', '-o', 'json'], io, controller.signal)
 */
export async function run(
  argv: readonly string[],
  io: CliIo,
  signal: AbortSignal,
): Promise<number> {
  const [name, ...rest] = argv
  const helpOf = name === 'help' ? rest[0] : undefined
  if (name === undefined || ((name === 'help' || isHelpFlag(name)) && helpOf === undefined)) {
    for (const line of helpText()) io.stdout(line)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS.find((c) => c.name === (helpOf ?? name))
  try {
    if (command === undefined) {
      throw new UsageError(`unknown command "${helpOf ?? name}"; try "dataspace help"`)
    }
    if (helpOf !== undefined || wantsHelp(rest)) {
      for (const line of commandHelp(command)) io.stdout(line)
      return 0
    }
    await command.run(parseCommand(command, rest, io, signal))
    return 0
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`error: ${error.code}: ${oneLine(error.message)}`)
      return error instanceof UsageError ? 2 : 1
    }
    const code = (error as { code?: unknown }).code
    const label = typeof code === 'string' ? code : 'Internal'
    io.stderr(`error: ${label}: ${oneLine((error as Error).message ?? String(error))}`)
    return 1
  }
}

/** The `help` text: one line per command. */
export function helpText(): string[] {
  return [
    'usage: dataspace COMMAND [ARGS] [-o table|json] [--url URL]',
    '       dataspace COMMAND --help   (or: dataspace help COMMAND)',
    '',
    ...COMMANDS.map((c) => `  ${c.usage}\n      ${c.summary}`),
    '',
    'env: DATASPACE_URL (default http://127.0.0.1:7411), DATASPACE_TOKEN,',
    '     DATASPACE_HOST, DATASPACE_PORT, DATASPACE_BACKEND (serve)',
  ]
}

/** `COMMAND --help`: the usage line, what the command does, and its details (flags, env). */
export function commandHelp(command: Command): string[] {
  const lines = [`usage: dataspace ${command.usage}`, '', `  ${command.summary}`]
  if (command.details !== undefined)
    lines.push('', ...command.details.map((d) => (d === '' ? '' : `  ${d}`)))
  if (command.name !== 'serve') {
    lines.push(
      '',
      '  -o table|json  output for people (default) or scripts',
      '  --url URL      the server (default: DATASPACE_URL, else http://127.0.0.1:7411);',
      '                 DATASPACE_TOKEN is sent as a bearer token',
    )
  }
  return lines
}

function isHelpFlag(arg: string): boolean {
  return arg === '--help' || arg === '-h'
}

/**
 * `--help` / `-h` anywhere before `--` asks for help, whatever else the line says (so a half-typed
 * command can still be asked about); after `--` it is an ordinary argument.
 */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--')
  return (end === -1 ? args : args.slice(0, end)).some(isHelpFlag)
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ')
}
