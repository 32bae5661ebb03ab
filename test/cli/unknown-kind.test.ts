import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { runCli, startServe } from './helpers.js'
import type { ServeProcess } from './helpers.js'

describe('dataspace list of a kind nobody defined or wrote', () => {
  let serve: ServeProcess
  before(async () => {
    serve = await startServe()
  })
  after(async () => {
    await serve.stop()
  })

  it('says so on stderr and exits 0, as a table and as JSON', async () => {
    const table = await runCli(serve.url, ['list', 'api.rout'])
    assert.equal(table.code, 0, table.stderr)
    assert.equal(table.stdout, 'KIND  ID  OWNER  REV  LABELS  DATA\n')
    assert.equal(table.stderr, 'no kind "api.rout" is defined and no records of it exist\n')

    const json = await runCli(serve.url, ['list', 'api.rout', '--labels', 'env=prod', '-o', 'json'])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual((JSON.parse(json.stdout) as { items: unknown[] }).items, [])
    assert.equal(json.stderr, 'no kind "api.rout" is defined and no records of it exist\n')
  })

  it('says nothing for a kind that has held records, or when records match', async () => {
    const put = await runCli(serve.url, ['assert', 'job', 'j1', '{"n":1}'])
    assert.equal(put.code, 0, put.stderr)
    const some = await runCli(serve.url, ['list', 'job'])
    assert.equal(some.stderr, '')
    const none = await runCli(serve.url, ['list', 'job', '--fields', 'n=2'])
    assert.equal(none.code, 0)
    assert.equal(none.stderr, '')
    const gone = await runCli(serve.url, ['retract', 'job', 'j1'])
    assert.equal(gone.code, 0, gone.stderr)
    const empty = await runCli(serve.url, ['list', 'job'])
    assert.equal(empty.stderr, '')
  })
})
