import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { checkFile, checkLayers } from '../../scripts/check-layers.js'

const srcRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src')

/** Every file reachable by static import from `entry` (relative imports only). */
function reachable(entry: string): Set<string> {
  const seen = new Set<string>()
  const pending = [entry]
  // Statements at the start of a line only: doc comments quote imports too.
  const specifiers =
    /^\s*(?:import|export)[^'";]*?from\s+['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\)/gm
  while (pending.length > 0) {
    const file = pending.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    for (const match of readFileSync(file, 'utf8').matchAll(specifiers)) {
      const specifier = match[1] ?? match[2] ?? ''
      pending.push(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'))
    }
  }
  return seen
}

describe('layers', () => {
  it('every import under src/ points down the layer order', () => {
    assert.deepEqual(checkLayers(srcRoot), [])
  })

  it('names an upward import, a facade reaching into the engine and a backend past its port', () => {
    const at = (path: string): string => resolve(srcRoot, path)
    assert.match(
      checkFile(srcRoot, at('engine/x.ts'), "import { ProcessGroups } from '../groups/index.js'")[0]
        ?.reason ?? '',
      /engine\/ may not import groups\//,
    )
    assert.match(
      checkFile(srcRoot, at('client/x.ts'), "import type { Engine } from '../engine/index.js'")[0]
        ?.reason ?? '',
      /client\/ may not import engine\//,
    )
    assert.match(
      checkFile(srcRoot, at('kv/x.ts'), "import { Engine } from '../engine/engine.js'")[0]
        ?.reason ?? '',
      /facade/,
    )
    assert.match(
      checkFile(
        srcRoot,
        at('backends/sqlite/x.ts'),
        "import { Engine } from '../../engine/index.js'",
      )[0]?.reason ?? '',
      /backend/,
    )
    assert.deepEqual(
      checkFile(srcRoot, at('kv/x.ts'), "import type { Kernel } from '../engine/index.js'"),
      [],
    )
  })

  it('the client loads nothing of the engine, the facades, the backends or the server', () => {
    const loaded = [...reachable(resolve(srcRoot, 'client/index.ts'))].map((file) =>
      file.slice(srcRoot.length + 1),
    )
    const leaked = loaded.filter((file) =>
      /^((engine|groups|names|kv|backends|server|cli)\/|dataspace\.ts$)/.test(file),
    )
    assert.deepEqual(leaked, [])
    assert.ok(loaded.some((file) => file.startsWith('protocol/')))
  })
})
