// Runs every test file under test/ with node:test through tsx.
// Node 20's --test takes no globs, so the file list is collected here.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function collect(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...collect(path))
    else if (name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

const filters = process.argv.slice(2)
const files = collect('test').filter(
  (f) => filters.length === 0 || filters.some((x) => f.includes(x)),
)
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', ...files], {
  stdio: 'inherit',
})
process.exit(result.status ?? 1)
