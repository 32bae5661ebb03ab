import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { DataspaceApi } from '../../src/index.js'
import { RouteTable } from './route-table.js'
import type { RouteChange, ServedRoute } from './route-table.js'

/** Options of {@link startApiServer}. */
export interface ApiServerOptions {
  /** Where subsystems assert their `api.route` records. */
  readonly ds: Pick<DataspaceApi, 'watch'>
  /** `0` picks a free port; read the chosen one from `url`. */
  readonly port: number
  readonly host: string
  /** Called for every route-table change (for logging). */
  readonly onRouteChange?: (change: RouteChange) => void
}

/** A running API server. */
export interface ApiServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string
  /** The live route table the server answers from. */
  readonly table: RouteTable
  /** Stops accepting, drops open connections, stops watching. Idempotent. */
  close(): Promise<void>
}

/** How many paths a 404 lists, so that a dataspace full of routes cannot bloat every miss. */
const MAX_LISTED_PATHS = 50

/**
 * Starts an HTTP server whose routes are whatever `api.route` records the dataspace holds right
 * now. It listens only once the route table holds the initial snapshot, so a server started
 * after subsystems registered serves their routes from its first request (Saluki's "restart
 * and almost immediately recover").
 *
 * @example
 * const server = await startApiServer({ ds, port: 0, host: '127.0.0.1' })
 * const res = await fetch(`${server.url}/health`)
 * await server.close()
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const table = await RouteTable.open(
    options.ds,
    options.onRouteChange === undefined ? {} : { onChange: options.onRouteChange },
  )
  const server = createServer((req, res) => respond(table, req, res))
  try {
    await listen(server, options.port, options.host)
  } catch (error) {
    await table.close()
    throw error
  }
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | undefined
  return {
    url: `http://${host}:${address.port}`,
    table,
    close() {
      closing ??= shutdown(server, table)
      return closing
    },
  }
}

function respond(table: RouteTable, req: IncomingMessage, res: ServerResponse): void {
  const method = req.method ?? 'GET'
  // Only the path matters for matching; the base is a placeholder required by the URL parser.
  const path = new URL(req.url ?? '/', 'http://route.invalid').pathname
  const lookupMethod = method === 'HEAD' ? 'GET' : method
  const route = table.lookup(lookupMethod, path)
  if (route !== undefined) {
    send(res, method, route.status, {
      route: route.id,
      method: route.method,
      path: route.path,
      servedBy: route.owner,
      revision: route.revision,
      body: route.body ?? null,
    })
    return
  }
  const allowed = table.methodsAt(path)
  if (allowed.length > 0) {
    res.setHeader('allow', [...allowed, ...(allowed.includes('GET') ? ['HEAD'] : [])].join(', '))
    send(res, method, 405, {
      error: 'MethodNotAllowed',
      message: `${method} ${path} is not served; try ${allowed.join(', ')}`,
      allowed,
    })
    return
  }
  const paths = [...new Set(table.routes().map((r: ServedRoute) => r.path))]
  send(res, method, 404, {
    error: 'NotFound',
    message: `no subsystem serves ${method} ${path}`,
    paths: paths.slice(0, MAX_LISTED_PATHS),
  })
}

function send(res: ServerResponse, method: string, status: number, payload: unknown): void {
  const text = JSON.stringify(payload)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store', // routes come and go; a cached answer may name a dead subsystem
  })
  res.end(method === 'HEAD' ? undefined : text)
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

async function shutdown(server: Server, table: RouteTable): Promise<void> {
  const stopped = new Promise<void>((resolve, reject) => {
    server.close((error) => (error === undefined ? resolve() : reject(error)))
  })
  // Keep-alive clients (fetch keeps connections open) would otherwise hold `close` for seconds.
  server.closeAllConnections()
  await stopped
  await table.close()
}
