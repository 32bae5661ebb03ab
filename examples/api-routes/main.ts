/**
 * The runnable demo (`npx tsx examples/api-routes/main.ts`): three subsystems register HTTP routes in a dataspace, and an
 * API server that has never heard of them serves those routes live.
 *
 * Environment: `DATASPACE_HOST` (default 127.0.0.1), `DATASPACE_PORT` (default 7411; 0 picks a
 * free port), `DATASPACE_EPHEMERAL_MS` (how long `/ephemeral` lives, default 10000).
 * SIGINT or SIGTERM stops the server, closes the dataspace and exits with code 0.
 */
import { createDataspace } from '../../src/index.js'
import type { ExitReason } from '../../src/index.js'
import { defineApiRouteKind } from './route-kind.js'
import type { RouteChange, ServedRoute } from './route-table.js'
import { startApiServer } from './server.js'
import { ephemeralSubsystem, healthSubsystem, statsSubsystem } from './subsystems.js'

/** If closing hangs (a bug), leave anyway rather than ignore the operator's signal. */
const SHUTDOWN_DEADLINE_MS = 5000

function readConfig(env: NodeJS.ProcessEnv): { host: string; port: number; ephemeralMs: number } {
  return {
    host: nonEmpty(env['DATASPACE_HOST']) ?? '127.0.0.1',
    port: integer('DATASPACE_PORT', env['DATASPACE_PORT'], 7411, 0, 65535),
    ephemeralMs: integer(
      'DATASPACE_EPHEMERAL_MS',
      env['DATASPACE_EPHEMERAL_MS'],
      10_000,
      1,
      2 ** 31 - 1,
    ),
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim()
}

function integer(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const text = nonEmpty(raw)
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`)
  }
  return value
}

function describeRoute(route: ServedRoute): string {
  return `${route.method} ${route.path} (${route.id}, served by ${route.owner ?? 'nobody'})`
}

function logChange(change: RouteChange): void {
  switch (change.type) {
    case 'rebuilt':
      console.log(`routes at revision ${change.revision}: ${change.routes.length} route(s)`)
      for (const route of change.routes) console.log(`  ${describeRoute(route)}`)
      break
    case 'added':
      console.log(`+ ${describeRoute(change.route)}`)
      break
    case 'updated':
      // /stats rewrites its body every second; log only changes a reader would care about.
      if (
        change.route.path !== change.previous.path ||
        change.route.owner !== change.previous.owner
      ) {
        console.log(`~ ${describeRoute(change.route)}`)
      }
      break
    case 'removed':
      console.log(`- ${describeRoute(change.route)}: ${change.reason}`)
      break
    case 'invalid':
      console.log(
        `! ignoring route ${change.id} from ${change.owner ?? 'nobody'}: ${change.message}`,
      )
      break
    case 'reset':
      console.log(`route watch reset (${change.reason}); resnapshotting`)
      break
    default:
      change satisfies never
  }
}

function describeExit(reason: ExitReason): string {
  return typeof reason === 'string' ? reason : `error: ${String(reason.error)}`
}

async function main(): Promise<void> {
  const config = readConfig(process.env)
  const ds = createDataspace()
  await defineApiRouteKind(ds)
  const server = await startApiServer({
    ds,
    port: config.port,
    host: config.host,
    onRouteChange: logChange,
  })
  console.log(`listening on ${server.url}`)

  const subsystems = [
    ds.spawn('health', healthSubsystem),
    ds.spawn('stats', statsSubsystem(1000)),
    ds.spawn('ephemeral', ephemeralSubsystem(config.ephemeralMs)),
  ]
  for (const proc of subsystems) {
    proc.exited
      .then((reason) => console.log(`process ${proc.id} exited: ${describeExit(reason)}`))
      .catch((error: unknown) => console.error('exit report failed:', error))
  }

  let stopping = false
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return
    stopping = true
    console.log(`${signal}: shutting down`)
    const deadline = setTimeout(() => {
      console.error(`shutdown took over ${SHUTDOWN_DEADLINE_MS} ms; exiting anyway`)
      process.exit(1)
    }, SHUTDOWN_DEADLINE_MS)
    deadline.unref()
    try {
      await server.close()
      await ds.close()
      console.log('stopped')
    } catch (error) {
      console.error('shutdown failed:', error)
      process.exitCode = 1
    } finally {
      clearTimeout(deadline)
    }
    // Nothing is left holding the event loop, so the process now exits on its own, with code 0.
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.on(signal, (s) => {
      stop(s).catch((error: unknown) => {
        console.error('shutdown failed:', error)
        process.exitCode = 1
      })
    })
}

main().catch((error: unknown) => {
  console.error('api-routes demo failed to start:', error instanceof Error ? error.message : error)
  process.exitCode = 1
})
