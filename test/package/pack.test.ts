// The package as a consumer gets it: `npm pack` (which builds dist/ through `prepare`), then
// `npm install <tarball>` in a temp project, then plain `node` (no tsx) importing every entry of
// `exports`, and the `dataspace` bin. Slow by nature: ~30–60 s (the tsc build and an install
// from the npm cache, which CI's `npm ci` warms); every step has its own time bound, and the
// temp directory is removed afterwards.
import assert from 'node:assert/strict'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { exitCode, OutputReader } from '../cli/helpers.js'
import { execTool, spawnTool } from './exec-tool.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CHECK = fileURLToPath(new URL('consumer-check.mjs', import.meta.url))

/**
 * A TypeScript consumer, type-checked strictly and without skipLibCheck against the installed
 * .d.ts files: public types that name a dependency's types (pg's PoolConfig) need those types
 * installed with the package.
 */
const CONSUMER_TS = `
import { createDataspace } from 'dataspace'
import type { DataspaceRecord } from 'dataspace'
import { connect } from 'dataspace/client'
import { createServer } from 'dataspace/server'
import { sqliteBackend } from 'dataspace/backends/sqlite'
import { postgresBackend } from 'dataspace/backends/postgres'

export async function consumer(): Promise<number | undefined> {
  const ds = createDataspace()
  const server = await createServer({ ds, port: 0 })
  const client = await connect(server.url, { name: 'typed' })
  const record: DataspaceRecord | undefined = await client.get('k', 'a')
  const pg = postgresBackend({ url: 'postgres://x', pool: { max: 2 } })
  return [sqliteBackend({ path: 'x.db' }), pg].length > 0 ? record?.revision : undefined
}
`

interface PackedFile {
  readonly path: string
}

describe('the packed package', { timeout: 240_000 }, () => {
  let dir = ''
  let project = ''
  let files: string[] = []

  before(
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'dataspace-pack-'))
      const pack = await execTool('npm', ['pack', '--json', '--pack-destination', dir], {
        cwd: ROOT,
        timeout: 120_000,
      })
      assert.equal(pack.code, 0, pack.stderr)
      // `prepare` output (tsc) precedes the JSON on stdout.
      const json = pack.stdout.slice(pack.stdout.indexOf('['))
      const [packed] = JSON.parse(json) as [{ filename: string; files: PackedFile[] }]
      files = packed.files.map((f) => f.path).sort()
      project = join(dir, 'consumer')
      createProject(project)
      copyFileSync(CHECK, join(project, 'check.mjs'))
      // --ignore-scripts: better-sqlite3's install step compiles SQLite here (~2 min, no prebuilt
      // binary is reachable); the repo's own install built the same version, so its binding is
      // reused below (a different version is rebuilt).
      const install = await execTool(
        'npm',
        [
          'install',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          '--ignore-scripts',
          join(dir, packed.filename),
        ],
        { cwd: project, timeout: 120_000 },
      )
      assert.equal(install.code, 0, install.stderr)
      await provideSqliteBinding(project)
    },
    { timeout: 240_000 },
  )

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('ships the build, the README and package.json, and nothing else', () => {
    for (const needed of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/client/index.js',
      'dist/server/index.js',
      'dist/backends/sqlite/index.js',
      'dist/backends/postgres/index.js',
      'dist/cli/main.js',
    ]) {
      assert.ok(files.includes(needed), `${needed} is packed: ${files.join(', ')}`)
    }
    const stray = files.filter(
      (f) =>
        !(f === 'package.json' || f === 'README.md' || /^LICENSE/.test(f)) &&
        !(f.startsWith('dist/') && /\.(js|d\.ts)$/.test(f)),
    )
    assert.deepEqual(stray, [], 'only dist/*.js, dist/*.d.ts, README.md, LICENSE, package.json')
  })

  it('imports dataspace and every subpath with plain node, and runs them', async () => {
    const check = await execTool(process.execPath, ['check.mjs'], {
      cwd: project,
      timeout: 30_000,
    })
    assert.equal(check.code, 0, check.stderr)
    const line = check.stdout.split('\n').find((l) => l.startsWith('RESULT '))
    assert.ok(line !== undefined, check.stdout)
    const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>
    const root = result.root as string[]
    for (const name of ['createDataspace', 'openDataspace', 'DataspaceError', 'NotOwner']) {
      assert.ok(root.includes(name), `dataspace exports ${name}`)
    }
    assert.ok((result.client as string[]).includes('connect'))
    assert.ok((result.server as string[]).includes('createServer'))
    assert.ok((result.sqlite as string[]).includes('sqliteBackend'))
    assert.ok((result.postgres as string[]).includes('postgresBackend'))
    assert.deepEqual(result.seen, { method: 'GET', path: '/health' })
    assert.equal(result.notOwner, 'NotOwner')
    assert.equal(result.stored, 1)
  })

  it('type-checks a strict TypeScript consumer against the shipped .d.ts files', async () => {
    writeFileSync(join(project, 'consumer.ts'), CONSUMER_TS)
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          // Node's types from this repo; everything else only from the consumer's install.
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts'],
      }),
    )
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    const check = await execTool(process.execPath, [tsc, '-p', '.'], {
      cwd: project,
      timeout: 90_000,
    })
    assert.equal(check.code, 0, check.stdout + check.stderr)
  })

  it('has a dataspace bin: --help, serve, and -o json that parses', async () => {
    const help = await execTool('npx', ['--no-install', 'dataspace', '--help'], {
      cwd: project,
      timeout: 30_000,
    })
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /^usage: dataspace COMMAND/)

    // The bin itself, not npx: npx runs it through `sh -c`, which a SIGTERM would orphan.
    const serve = spawnTool(
      join(project, 'node_modules', '.bin', 'dataspace'),
      ['serve', '--port', '0', '--backend', 'memory', '--log-level', 'silent'],
      { cwd: project },
    )
    try {
      const [, url = ''] = await new OutputReader(serve).next(/dataspace listening on (\S+)\n/)
      const env = { DATASPACE_URL: url }
      const put = await execTool(
        'npx',
        ['--no-install', 'dataspace', 'assert', 'api.route', 'health', '{"path":"/health"}'],
        { cwd: project, env, timeout: 30_000 },
      )
      assert.equal(put.code, 0, put.stderr)
      const list = await execTool(
        'npx',
        ['--no-install', 'dataspace', 'list', 'api.route', '-o', 'json'],
        { cwd: project, env, timeout: 30_000 },
      )
      assert.equal(list.code, 0, list.stderr)
      const page = JSON.parse(list.stdout) as { items: { id: string; data: unknown }[] }
      assert.deepEqual(
        page.items.map((r) => [r.id, r.data]),
        [['health', { path: '/health' }]],
      )
    } finally {
      serve.kill('SIGTERM')
      assert.equal(await exitCode(serve), 0)
    }
  })
})

/** A fresh consumer project: an ESM package.json and nothing else. */
function createProject(project: string): void {
  mkdirSync(project, { recursive: true })
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  )
}

/** Gives the consumer's better-sqlite3 its native binding: the repo's, when it is the same version. */
async function provideSqliteBinding(project: string): Promise<void> {
  const version = (dir: string): unknown =>
    (
      JSON.parse(
        readFileSync(join(dir, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8'),
      ) as { version: unknown }
    ).version
  const binding = join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
  if (version(ROOT) === version(project) && existsSync(join(ROOT, binding))) {
    mkdirSync(dirname(join(project, binding)), { recursive: true })
    copyFileSync(join(ROOT, binding), join(project, binding))
    return
  }
  const rebuild = await execTool('npm', ['rebuild', 'better-sqlite3'], {
    cwd: project,
    timeout: 300_000,
  })
  assert.equal(rebuild.code, 0, rebuild.stderr)
}
