// One server per SQLite file: a second one must refuse to start, at once, naming the file and
// the holder, instead of starting and then fighting the first over revisions.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import { openDataspace, Unavailable } from '../../src/index.js'
import { exitCode, spawnCli, startServe } from '../cli/helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'ds-sqlite-lock-'))
after(() => rmSync(dir, { recursive: true, force: true }))

describe('sqlite backend: one server per file', () => {
  it('refuses a second open of the file at once, naming the file and the holder', async () => {
    const file = join(dir, 'twice.db')
    const first = await openDataspace({ backend: sqliteBackend({ path: file }) })
    await first.process('p').assert('lock.item', 'a', { n: 1 }, { owner: null })
    const started = Date.now()
    await assert.rejects(
      openDataspace({ backend: sqliteBackend({ path: file }) }),
      (error: unknown) => {
        assert.ok(error instanceof Unavailable, String(error))
        assert.ok(error.message.includes(file), error.message)
        assert.match(error.message, new RegExp(`pid ${process.pid}\\b`))
        assert.doesNotMatch(error.message, /\n/)
        return true
      },
    )
    assert.ok(Date.now() - started < 1_000, 'fails fast, without waiting on the lock')
    // The first is untouched by the refused attempt.
    await first.process('q').assert('lock.item', 'b', { n: 2 }, { owner: null })
    await first.close()

    const next = await openDataspace({ backend: sqliteBackend({ path: file }) })
    assert.equal((await next.list('lock.item')).items.length, 2)
    await next.close()
  })

  it(
    'a second `dataspace serve` on the file prints one line and exits non-zero',
    { timeout: 30_000 },
    async () => {
      const file = join(dir, 'served.db')
      const first = await startServe(['--backend', `sqlite:${file}`])
      const second = spawnCli(['serve', '--port', '0', '--backend', `sqlite:${file}`])
      let stderr = ''
      let stdout = ''
      second.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      second.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      const code = await exitCode(second)
      assert.notEqual(code, 0)
      assert.equal(stdout, '')
      const lines = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'))
      assert.equal(lines.length, 1, stderr)
      assert.ok(lines[0]!.includes(file), stderr)
      assert.match(lines[0]!, new RegExp(`pid ${first.child.pid}\\b`))
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
      assert.equal(await first.stop('SIGTERM'), 0)

      const third = await startServe(['--backend', `sqlite:${file}`])
      assert.equal((await fetch(`${third.url}/livez`)).status, 200)
      assert.equal(await third.stop('SIGTERM'), 0)
    },
  )
})
