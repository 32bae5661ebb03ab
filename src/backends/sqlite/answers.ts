import type Database from 'better-sqlite3'
import type { StoredAnswer, WriteBatch } from '../../engine/ports/backend.js'

/**
 * The migration that adds the answers of sessions' write calls (docs/backends.md, "Answers"):
 * one row per remembered call, written in the transaction of the commit it answers.
 */
export const ANSWERS_TABLE = `CREATE TABLE answers (
     session TEXT NOT NULL, call INTEGER NOT NULL, revision INTEGER NOT NULL, value TEXT NOT NULL,
     PRIMARY KEY (session, call)) STRICT, WITHOUT ROWID;`

/** The answers of persisted sessions, oldest first; rows of sessions that are gone are deleted. */
export function loadAnswers(db: Database.Database): StoredAnswer[] {
  db.prepare('DELETE FROM answers WHERE session NOT IN (SELECT id FROM sessions)').run()
  return db
    .prepare('SELECT session, call, revision, value FROM answers ORDER BY revision, call')
    .all() as StoredAnswer[]
}

/**
 * Writes a batch's answers, inside its transaction: puts, forgotten calls, and every answer of
 * a session the batch deletes (so it runs after the session deletes).
 */
export function prepareAnswers(db: Database.Database): (batch: WriteBatch) => void {
  const put = db.prepare(
    `INSERT INTO answers (session, call, revision, value) VALUES (@session, @call, @revision, @value)
     ON CONFLICT (session, call) DO UPDATE SET revision = excluded.revision, value = excluded.value`,
  )
  const forget = db.prepare('DELETE FROM answers WHERE session = ? AND call = ?')
  const forgetSession = db.prepare('DELETE FROM answers WHERE session = ?')
  return (batch) => {
    for (const answer of batch.answers?.put ?? []) put.run(answer)
    for (const key of batch.answers?.delete ?? []) forget.run(key.session, key.call)
    for (const id of batch.sessions.delete) forgetSession.run(id)
  }
}
