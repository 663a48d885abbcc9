/**
 * Environment for a child process a test spawns with `node --import tsx`. tap's coverage hook
 * follows children, but tsx transpiles with other line maps than tap's loader, and merging the two
 * marks covered lines as missed. The child's coverage is excluded; what it runs is covered in
 * process by the same tests.
 *
 * The child also resolves `keyhole`, `keyhole/fastify` and `keyhole/express` to their source (the
 * `keyhole-source` export condition, as tap's `node-arg` sets it for the test files).
 */
export function uncoveredChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const nodeOptions = [env.NODE_OPTIONS, '--conditions=keyhole-source'].filter(Boolean).join(' ')
  return { ...env, NODE_OPTIONS: nodeOptions, _TAPJS_PROCESSINFO_COV_EXCLUDE_: '/./' }
}
