#!/usr/bin/env node
// The `dataspace` executable (the package's bin): `npx dataspace <command>`, or from the sources
// `npm run -s dataspace -- <command>` / `node --import tsx src/cli/main.ts <command>`.
import { run } from './index.js'

const controller = new AbortController()
let signals = 0
function interrupt(signal: NodeJS.Signals): void {
  // A second Ctrl-C while shutting down means "now".
  if (++signals > 1) process.exit(130)
  // The signal's name is the reason, so `serve` can log what stopped it.
  controller.abort(signal)
}
process.on('SIGINT', interrupt)
process.on('SIGTERM', interrupt)

const io = {
  stdout: (line: string) => void process.stdout.write(`${line}\n`),
  stderr: (line: string) => void process.stderr.write(`${line}\n`),
  env: process.env,
}
const code = await run(process.argv.slice(2), io, controller.signal)
// Exit explicitly: a fetch keep-alive socket must not keep a finished command alive.
process.exit(code)
