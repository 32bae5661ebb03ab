import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { COMMANDS, run } from '../../src/cli/index.js'
import type { CliIo } from '../../src/cli/index.js'
import { exitCode, spawnCli } from './helpers.js'

/** Runs the CLI in process, capturing its output: `--help` must never reach a server. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: (line) => void (stdout += `${line}\n`),
    stderr: (line) => void (stderr += `${line}\n`),
    // A URL nobody listens on: a command that tried to run would fail, not print help.
    env: { DATASPACE_URL: 'http://127.0.0.1:9' },
  }
  const code = await run(argv, io, new AbortController().signal)
  return { code, stdout, stderr }
}

describe('dataspace --help', () => {
  it('COMMAND --help, COMMAND -h and help COMMAND print the usage and exit 0, for every command', async () => {
    for (const command of COMMANDS) {
      for (const argv of [
        [command.name, '--help'],
        [command.name, '-h'],
        ['help', command.name],
      ]) {
        const { code, stdout, stderr } = await cli(argv)
        assert.equal(code, 0, `${argv.join(' ')}: ${stderr}`)
        assert.equal(stderr, '', argv.join(' '))
        assert.ok(
          stdout.startsWith(`usage: dataspace ${command.usage}\n`),
          `${argv.join(' ')}: ${stdout}`,
        )
        assert.ok(stdout.includes(command.summary), argv.join(' '))
      }
    }
  })

  it('--help wins over other arguments and flags, but not after --', async () => {
    const list = await cli(['list', 'api.route', '--fields', 'a=b', '--help'])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^usage: dataspace list KIND/)
    const kvPut = await cli(['kv', 'put', '--help'])
    assert.equal(kvPut.code, 0, kvPut.stderr)
    assert.match(kvPut.stdout, /kv put BUCKET KEY VALUE/)
    // After `--`, `--help` is an argument: here, assert's JSON (not valid JSON: a usage error).
    const literal = await cli(['assert', 'k', 'id', '--', '--help'])
    assert.equal(literal.code, 2)
    assert.match(literal.stderr, /JSON argument is not valid JSON: --help/)
  })

  it('help of an unknown command is a usage error', async () => {
    const { code, stderr } = await cli(['help', 'nope'])
    assert.equal(code, 2)
    assert.match(stderr, /^error: InvalidArgument: unknown command "nope"/)
  })

  it('serve --help prints its flags and environment, and starts nothing', async () => {
    const child = spawnCli(['serve', '--help'])
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    assert.equal(await exitCode(child), 0, stderr)
    assert.match(stdout, /^usage: dataspace serve \[--host H\] \[--port P\]/)
    for (const env of ['DATASPACE_HOST', 'DATASPACE_PORT', 'DATASPACE_BACKEND']) {
      assert.ok(stdout.includes(env), `${env} in ${stdout}`)
    }
    assert.doesNotMatch(stdout, /listening on http/)
    assert.equal(stderr, '')
  })
})
