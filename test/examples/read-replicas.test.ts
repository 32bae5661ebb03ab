// The read-replicas example, run as it is documented: a writer `serve` and two `serve --follow`
// processes on one PostgreSQL schema. Both followers' watchers see the writer's five changes, at
// the same revisions, in the same order; a write on a follower is refused with 503 Unavailable;
// every server stops on SIGTERM with exit 0.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { it } from 'node:test'
import { promisify } from 'node:util'
import { POSTGRES_URL, postgresSkip, sql } from '../postgres-env.js'

/** The events one follower printed, in the order it printed them. */
function seenBy(stdout: string, name: string): string[] {
  const prefix = `${name}: r`
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(prefix) && !line.includes('watching'))
    .map((line) => line.slice(name.length + 2))
}

it(
  'shows both followers the same events and refuses a write on one',
  { skip: postgresSkip },
  async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/read-replicas/main.ts'],
      { timeout: 60_000, env: { ...process.env, DATASPACE_EXAMPLE_POSTGRES_URL: POSTGRES_URL } },
    )
    const first = seenBy(stdout, 'follower-1')
    assert.deepEqual(
      first.map((line) => line.replace(/^r\d+ /, '')),
      [
        'asserted log-level="info"',
        'asserted max-connections=100',
        'asserted log-level="debug"',
        'asserted feature.search=true',
        'retracted max-connections',
      ],
      stdout,
    )
    assert.deepEqual(seenBy(stdout, 'follower-2'), first, 'the same events at the same revisions')
    // The revisions are the writer's: what it printed for its asserts, and increasing.
    const wrote = [...stdout.matchAll(/^writer: (r\d+ asserted .*)$/gm)].map((m) => m[1])
    assert.deepEqual(wrote, first.slice(0, 4))
    const revisions = first.map((line) => Number(/^r(\d+)/.exec(line)?.[1]))
    assert.deepEqual(
      revisions,
      [...revisions].sort((x, y) => x - y),
    )
    assert.match(stdout, /both followers saw the same 5 events in the same order: true/)

    assert.match(stdout, /^follower-1 \/readyz role: follower$/m)
    assert.match(stdout, /^follower-1, a client's write: refused: Unavailable$/m)
    assert.match(stdout, /^PUT on follower-1: 503 Unavailable: .*follow.*write on the writer/m)
    const stopped = [...stdout.matchAll(/^server pid \d+ stopped \(exit (\S+)\)$/gm)]
    assert.deepEqual(
      stopped.map((m) => m[1]),
      ['0', '0', '0'],
    )

    const schema = /^schema (ds_example_replicas_\d+):/m.exec(stdout)?.[1]
    assert.ok(schema, stdout)
    const schemas = await sql('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
    assert.equal(schemas.length, 0, 'the example dropped its schema')
  },
)
