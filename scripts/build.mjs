// `npm run build`, and `prepare` (so `npm install`, `npm ci` and `npm pack` build too): compiles
// src/ into dist/, which the package's `exports` and its `dataspace` bin point at.
import { spawnSync } from 'node:child_process'
import { chmodSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import process from 'node:process'

// From scratch: a file deleted from src/ must not linger in dist/ and be shipped.
rmSync('dist', { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status ?? 1)
// npm makes a bin executable when it installs a package, but not in this checkout, where
// `npx dataspace` runs the bin in place (linked once, so every rebuild must keep the mode).
chmodSync('dist/cli/main.js', 0o755)
