import { parseCommand } from './command.js'
import type { Command } from './command.js'
import { CliError, UsageError } from './http-client.js'
import { kvCommand } from './kv.js'
import type { CliIo } from './output.js'
import { assertCommand, getCommand, listCommand, retractCommand, watchCommand } from './records.js'
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
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    for (const line of helpText()) io.stdout(line)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS.find((c) => c.name === name)
  try {
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"; try "dataspace help"`)
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
    '',
    ...COMMANDS.map((c) => `  ${c.usage}\n      ${c.summary}`),
    '',
    'env: DATASPACE_URL (default http://127.0.0.1:7411), DATASPACE_TOKEN,',
    '     DATASPACE_HOST, DATASPACE_PORT, DATASPACE_BACKEND (serve)',
  ]
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ')
}
