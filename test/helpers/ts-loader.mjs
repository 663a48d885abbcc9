// `npm test` has every test process tap starts load this first (test/run.ts puts it in the tap
// runner's NODE_OPTIONS, which tap passes on to each test process). In a test process it replaces
// the ts-node that tap 21 uses below Node 22 with ts-loader-hooks.mjs: the same TypeScript
// transpile (so coverage maps to the same lines), cached on disk across processes, with Node's
// own resolution (the sources import each other with their .ts extension). ts-node transpiled
// every imported file afresh in every test process: 1-2.5 s of CPU per file.
//
// The test process then takes this import out of its own NODE_OPTIONS, so that no process a test
// starts loads TypeScript through it: tap's @tapjs/processinfo gives a child whose env has no
// NODE_OPTIONS the test process's own NODE_OPTIONS (plus its loader), and through this loader
// test/consumer's "user" processes, which are given no NODE_OPTIONS, ran an application's .ts
// policies module that Node alone cannot load.
import { register } from 'node:module'

if (process.env.TAP_CHILD_ID !== undefined) {
  // TAP_TYPE_STRIP_ONLY=1 is how @tapjs/typescript's --import, which runs after this one, is told
  // not to load ts-node.
  process.env.TAP_TYPE_STRIP_ONLY = '1'
  register('./ts-loader-hooks.mjs', import.meta.url)
  process.env.NODE_OPTIONS = withoutThisLoader(process.env.NODE_OPTIONS ?? '')
}

/** NODE_OPTIONS without its `--import` of this file (as run.ts wrote it, or quoted by processinfo). */
export function withoutThisLoader(nodeOptions) {
  return nodeOptions.replace(/(^|\s+)"?--import=[^\s"]*\/ts-loader\.mjs"?(?=\s|$)/g, '').trim()
}
