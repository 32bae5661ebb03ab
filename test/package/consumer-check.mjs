// Run by pack.test.ts with plain `node` inside a temp project that installed the packed tarball:
// everything here resolves through the package's `exports`, never through this repo's sources.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import process from 'node:process'
import * as root from 'dataspace'
import * as client from 'dataspace/client'
import * as server from 'dataspace/server'
import * as sqlite from 'dataspace/backends/sqlite'
import * as postgres from 'dataspace/backends/postgres'

const ds = root.createDataspace()
await ds.defineKind('api.route', { indexes: ['path'] })
const health = ds.process('health')
await health.assert('api.route', 'health', { method: 'GET', path: '/health' })

// The network path: the server and the client from their subpaths, on a free port.
const http = await server.createServer({ ds, port: 0 })
const remote = await client.connect(http.url, { name: 'consumer' })
const seen = await remote.get('api.route', 'health')
let notOwner = ''
try {
  await remote.session.assert('api.route', 'health', { path: '/stolen' })
} catch (error) {
  notOwner = error instanceof root.NotOwner ? error.code : String(error)
}
await remote.close()
await http.close()
await ds.close()

// The SQLite backend needs better-sqlite3's native binding, installed with the package.
const dir = mkdtempSync(join(tmpdir(), 'dataspace-consumer-'))
let stored
try {
  const durable = await root.openDataspace({
    backend: sqlite.sqliteBackend({ path: join(dir, 'ds.db') }),
  })
  await durable.process('p').assert('k', 'a', { n: 1 }, {})
  stored = (await durable.list('k')).items.length
  await durable.close()
} finally {
  rmSync(dir, { recursive: true, force: true })
}

const names = (module) => Object.keys(module).sort()
process.stdout.write(
  `RESULT ${JSON.stringify({
    root: names(root),
    client: names(client),
    server: names(server),
    sqlite: names(sqlite),
    postgres: names(postgres),
    seen: seen?.data,
    notOwner,
    stored,
  })}\n`,
)
