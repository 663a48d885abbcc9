// `npm test` loads this first in every process it starts (test/run.ts puts it in NODE_OPTIONS). It
// replaces the ts-node that tap 21 uses below Node 22 with ts-loader-hooks.mjs: the same
// TypeScript transpile (so coverage maps to the same lines), cached on disk across processes,
// with Node's own resolution (the sources import each other with their .ts extension). ts-node
// transpiled every imported file afresh in every test process: 1-2.5 s of CPU per file.
// TAP_TYPE_STRIP_ONLY=1 is how @tapjs/typescript is told not to load ts-node.
import { register } from 'node:module'

process.env.TAP_TYPE_STRIP_ONLY = '1'
register('./ts-loader-hooks.mjs', import.meta.url)
