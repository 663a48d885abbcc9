#!/usr/bin/env node
/** The `keyhole` command line (see src/cli/main.ts). */
import { run } from '../src/cli/main.ts'

process.exitCode = await run(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
})
