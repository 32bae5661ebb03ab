/**
 * The layer gate of `npm run lint`: every import under `src/` must point down the layer order of
 * `docs/design.md` ("Layers"). Import cycles are dpdm's job (`lint:cycles`); this checks
 * direction, which a cycle check cannot see (an upward import with no way back is no cycle).
 *
 *   tsx scripts/check-layers.ts          # exits 1 and names each offending import
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** What each layer may import, besides its own folder. Order = the diagram in docs/design.md. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  errors: [],
  model: ['errors'],
  streams: ['model', 'errors'],
  query: ['model', 'errors'],
  engine: ['query', 'streams', 'model', 'errors'],
  // The facades: records of reserved kinds over the kernel's `Kernel` port (see FACADES).
  groups: ['engine', 'query', 'streams', 'model', 'errors'],
  names: ['engine', 'query', 'streams', 'model', 'errors'],
  kv: ['engine', 'query', 'streams', 'model', 'errors'],
  // Backends implement the engine's backend port (see BACKENDS).
  backends: ['engine', 'query', 'model', 'errors'],
  // The composition root, src/dataspace.ts: the kernel with its facades and backends wired.
  root: ['groups', 'names', 'kv', 'backends', 'engine', 'query', 'streams', 'model', 'errors'],
  protocol: ['query', 'streams', 'model', 'errors'],
  server: [
    'protocol',
    'root',
    'groups',
    'names',
    'kv',
    'backends',
    'engine',
    'query',
    'streams',
    'model',
    'errors',
  ],
  // The client runs where the engine does not: it shares the model and the wire, nothing else.
  client: ['protocol', 'query', 'streams', 'model', 'errors'],
  cli: ['client', 'server', 'protocol', 'root', 'backends', 'engine', 'query', 'model', 'errors'],
  dashboard: ['client', 'protocol', 'query', 'streams', 'model', 'errors'],
  // src/index.ts, the package's front door, may re-export anything below the transports.
  package: ['root', 'groups', 'names', 'kv', 'engine', 'query', 'streams', 'model', 'errors'],
}

/** Facades see the kernel through its port only: type imports from `engine/index.ts`. */
const FACADES = new Set(['groups', 'names', 'kv'])
/** Backends see the engine through its ports only: `engine/ports/`. */
const BACKENDS = 'backends'

export interface LayerViolation {
  readonly file: string
  readonly line: number
  readonly specifier: string
  readonly reason: string
}

/** The layer of a file under `src/` (relative path with `/`). */
export function layerOf(path: string): string {
  if (path === 'dataspace.ts') return 'root'
  if (path === 'index.ts') return 'package'
  return path.split('/')[0] ?? path
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** Every import of one file that breaks the layer order. */
export function checkFile(srcRoot: string, file: string, text: string): LayerViolation[] {
  const from = relative(srcRoot, file).split(sep).join('/')
  const layer = layerOf(from)
  const allowed = ALLOWED[layer]
  const found: LayerViolation[] = []
  const lineOf = (index: number): number => text.slice(0, index).split('\n').length
  const check = (specifier: string, typeOnly: boolean, index: number): void => {
    if (!specifier.startsWith('.')) return
    const to = relative(srcRoot, resolve(dirname(file), specifier))
      .split(sep)
      .join('/')
      .replace(/\.js$/, '.ts')
    if (to.startsWith('..')) return
    const target = layerOf(to)
    const report = (reason: string): void => {
      found.push({ file: from, line: lineOf(index), specifier, reason })
    }
    if (allowed === undefined) return report(`${layer}/ is not a known layer`)
    if (target === layer) return
    if (!allowed.includes(target)) return report(`${layer}/ may not import ${target}/`)
    if (FACADES.has(layer) && target === 'engine') {
      if (!typeOnly || to !== 'engine/index.ts')
        report('a facade sees the kernel only through `import type { Kernel } from engine/index`')
    }
    if (layer === BACKENDS && target === 'engine' && !to.startsWith('engine/ports/'))
      report('a backend sees the engine only through engine/ports/')
  }
  for (const match of text.matchAll(IMPORT))
    check(match[3] ?? '', match[2] !== undefined, match.index ?? 0)
  for (const match of text.matchAll(DYNAMIC)) check(match[1] ?? '', false, match.index ?? 0)
  return found
}

function* sources(dir: string): Iterable<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (entry.name.endsWith('.ts')) yield path
  }
}

/** Every violation under `srcRoot`. */
export function checkLayers(srcRoot: string): LayerViolation[] {
  return [...sources(srcRoot)].flatMap((file) =>
    checkFile(srcRoot, file, readFileSync(file, 'utf8')),
  )
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src')
  const violations = checkLayers(srcRoot)
  for (const v of violations)
    console.error(`src/${v.file}:${v.line}: ${v.reason} (imports '${v.specifier}')`)
  if (violations.length > 0) {
    console.error(
      `${violations.length} import(s) cross a layer upward: see docs/design.md "Layers"`,
    )
    process.exit(1)
  }
  console.log('layers: every import under src/ points down')
}
