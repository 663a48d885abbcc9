/**
 * Environment for a child process a test spawns with `node --import tsx`. tap's coverage hook
 * follows children, but tsx transpiles with other line maps than tap's loader, and merging the two
 * marks covered lines as missed. The child's coverage is excluded; what it runs is covered in
 * process by the same tests.
 */
export function uncoveredChildEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, _TAPJS_PROCESSINFO_COV_EXCLUDE_: '/./' }
}
