import type { Process, ProcessFunction } from '../../src/index.js'
import { API_ROUTE_KIND } from './route-kind.js'
import type { ApiRouteInput } from './route-kind.js'

/**
 * The demo's subsystems. Each is a process function for `ds.spawn`: it asserts its routes and
 * lives as long as its function runs. None of them knows the API server exists, and none
 * cleans up — the dataspace retracts their routes when they exit, however they exit.
 */

/** Asserts one route owned by `proc`. */
function assertRoute(proc: Process, id: string, route: ApiRouteInput): Promise<unknown> {
  return proc.assert(API_ROUTE_KIND, id, route)
}

/** Resolves when `signal` aborts: a subsystem that only serves parks here until it is stopped. */
function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

/** Waits `ms`; resolves `false` instead if `signal` aborts first (the timer is cleared). */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** `GET /health` for as long as the process lives. */
export const healthSubsystem: ProcessFunction = async (proc, signal) => {
  await assertRoute(proc, 'health', {
    path: '/health',
    body: { status: 'ok' },
    description: 'liveness of the demo',
  })
  await untilAborted(signal)
}

/**
 * `GET /stats`, whose body the subsystem rewrites every `intervalMs`: an owner overwrite, which
 * watchers see as `asserted` with `previous`, and the server serves at once.
 */
export function statsSubsystem(intervalMs = 1000): ProcessFunction {
  return async (proc, signal) => {
    const startedAt = Date.now()
    const publish = (tick: number): Promise<unknown> => {
      const memory = process.memoryUsage()
      return assertRoute(proc, 'stats', {
        path: '/stats',
        body: {
          tick,
          uptimeMs: Date.now() - startedAt,
          rssBytes: memory.rss,
          heapUsedBytes: memory.heapUsed,
        },
        description: `refreshed every ${intervalMs} ms`,
      })
    }
    await publish(0)
    for (let tick = 1; await sleep(intervalMs, signal); tick++) await publish(tick)
  }
}

/** `GET /ephemeral`, for `lifetimeMs`; then the function returns and the route goes with it. */
export function ephemeralSubsystem(lifetimeMs = 10_000): ProcessFunction {
  return async (proc, signal) => {
    await assertRoute(proc, 'ephemeral', {
      path: '/ephemeral',
      body: { message: `this route vanishes ${lifetimeMs} ms after it appeared` },
    })
    await sleep(lifetimeMs, signal)
  }
}
