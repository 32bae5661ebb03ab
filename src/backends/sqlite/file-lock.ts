import { readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import Database from 'better-sqlite3'
import { Unavailable } from '../../errors/index.js'

/** Who holds a database file: written beside it once its lock is taken. */
interface Holder {
  readonly pid: number
  readonly host: string
  readonly since: string
}

/**
 * Opens `path` as the one writer of the file: `locking_mode = EXCLUSIVE` taken before WAL mode,
 * and held from open to close by one write transaction at once. Two servers writing one file
 * would each believe its own revision (the second is refused batch after batch), so the second
 * must not start at all. The busy timeout is 0 while the lock is taken: a held file fails at
 * once rather than after better-sqlite3's 5 s wait.
 *
 * The holder's pid, host and start time go to `<path>.holder`, a sidecar file, because nothing
 * inside a database locked this way can be read by anyone else. The OS drops the lock when the
 * holder dies (even by `kill -9`), so a stale sidecar never blocks: the next opener overwrites it.
 */
export function openLocked(path: string): {
  readonly db: Database.Database
  readonly release: () => void
} {
  const db = new Database(path, { timeout: 0 })
  try {
    db.pragma('locking_mode = EXCLUSIVE')
    db.pragma('journal_mode = WAL')
    db.exec('BEGIN EXCLUSIVE; COMMIT')
  } catch (error) {
    db.close()
    if ((error as { code?: unknown }).code !== 'SQLITE_BUSY') throw error
    throw new Unavailable(
      `the SQLite file ${path} is in use by another dataspace server (${describe(readHolder(path))}); ` +
        'stop it or use another file',
      { cause: error },
    )
  }
  db.pragma('busy_timeout = 5000')
  const holderFile = `${path}.holder`
  const holder: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() }
  writeFileSync(holderFile, `${JSON.stringify(holder)}\n`)
  return {
    db,
    release: () => {
      // Only our own record: a file closed after another server took it over is not ours.
      if (readHolder(path)?.pid === process.pid) {
        try {
          unlinkSync(holderFile)
        } catch {
          // Already gone: nothing to release.
        }
      }
    },
  }
}

function readHolder(path: string): Holder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(`${path}.holder`, 'utf8')) as Partial<Holder>
    if (typeof parsed.pid !== 'number') return undefined
    return { pid: parsed.pid, host: String(parsed.host), since: String(parsed.since) }
  } catch {
    return undefined
  }
}

function describe(holder: Holder | undefined): string {
  if (holder === undefined) return 'holder unknown: no readable .holder file beside it'
  return `held by pid ${holder.pid} on ${holder.host} since ${holder.since}`
}
