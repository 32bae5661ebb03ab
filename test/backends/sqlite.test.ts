// The SQLite backend against the one backend conformance suite, a fresh file per test.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import { backendConformance } from './conformance.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-sqlite-conformance-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

backendConformance('sqlite', async () => {
  const path = join(dir, `${++files}.db`)
  return {
    backend: sqliteBackend({ path }),
    reopen: async () => sqliteBackend({ path }),
    cleanup: async () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    },
  }
})
