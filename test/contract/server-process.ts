// A real server process for the contract suite: one line on stdin per command, one JSON line
// on stdout per answer. `open` starts a server over a fresh dataspace (so every test starts
// empty) and answers its URL; `close <url>` stops it. It exits when stdin closes.
import { createInterface } from 'node:readline'
import { createDataspace } from '../../src/index.js'
import { pino } from 'pino'
import { createServer } from '../../src/server/index.js'
import type { DataspaceServer } from '../../src/server/index.js'

const servers = new Map<string, { server: DataspaceServer; close(): Promise<void> }>()

async function handle(line: string): Promise<unknown> {
  const [command, arg] = line.trim().split(' ')
  if (command === 'open') {
    const options = arg === undefined ? {} : (JSON.parse(arg) as { historySize?: number })
    const ds = createDataspace(options)
    const server = await createServer({
      ds,
      port: 0,
      // Quiet: its stdout is the command channel; internal errors still reach stderr.
      logger: pino({ level: 'silent' }),
      onInternalError: (e) => console.error(e),
    })
    servers.set(server.url, {
      server,
      async close() {
        await server.close()
        await ds.close()
      },
    })
    return { url: server.url }
  }
  if (command === 'close' && arg !== undefined) {
    await servers.get(arg)?.close()
    servers.delete(arg)
    return { closed: arg }
  }
  return { error: `unknown command ${line}` }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  handle(line).then(
    (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`),
    (error: unknown) => process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`),
  )
})
lines.on('close', () => {
  Promise.all([...servers.values()].map((s) => s.close())).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`closing servers failed: ${String(error)}\n`)
      process.exit(1)
    },
  )
})
