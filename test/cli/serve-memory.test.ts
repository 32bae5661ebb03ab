// `dataspace serve --limits` also takes the engine's byte bounds (memoryBudgetBytes, …), and
// they reach the engine: /metrics reports the budget given.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { COMMANDS, serveSettings, UsageError } from '../../src/cli/index.js'
import type { CliIo } from '../../src/cli/index.js'
import { parseCommand } from '../../src/cli/command.js'
import { exitCode, OutputReader, spawnCli } from './helpers.js'

function settings(argv: string[]): ReturnType<typeof serveSettings> {
  const serve = COMMANDS.find((c) => c.name === 'serve')
  if (serve === undefined) throw new Error('no serve command')
  const io: CliIo = { stdout: () => {}, stderr: () => {}, env: {} }
  return serveSettings(parseCommand(serve, argv, io, new AbortController().signal))
}

describe('dataspace serve: memory bounds', () => {
  it('takes memoryBudgetBytes and the byte caps in --limits', () => {
    assert.deepEqual(
      settings(['--limits', 'memoryBudgetBytes=104857600,historyBytes=1048576,callBurst=5']).limits,
      { memoryBudgetBytes: 104857600, historyBytes: 1048576, callBurst: 5 },
    )
    assert.throws(() => settings(['--limits', 'memoryBudget=1']), UsageError)
  })

  it('hands the budget to the engine', async () => {
    const child = spawnCli([
      'serve',
      '--port',
      '0',
      '--backend',
      'memory',
      '--log-level',
      'silent',
      '--limits',
      'memoryBudgetBytes=123456789',
    ])
    try {
      const [, url] = await new OutputReader(child).next(/dataspace listening on (http:\/\/\S+)\n/)
      const text = await (await fetch(`${url}/metrics`)).text()
      assert.match(text, /^dataspace_memory_budget_bytes 123456789$/m)
    } finally {
      child.kill('SIGTERM')
      assert.equal(await exitCode(child), 0)
    }
  })
})
