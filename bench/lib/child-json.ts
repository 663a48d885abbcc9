/**
 * Runs a benchmark helper in its own Node process (`node [flags] --import tsx <module> [args]`),
 * sends it `input` as JSON on stdin when given, and resolves with the JSON it prints on stdout.
 * Its stderr passes through; a non-zero exit rejects.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export interface ChildOptions {
  /** Node flags before `--import tsx`, e.g. `--expose-gc`. */
  readonly flags?: readonly string[]
  readonly args?: readonly string[]
  /** Sent as JSON on stdin: thousands of tokens would overflow an argument list. */
  readonly input?: unknown
}

export function runChildJson<T>(module: URL, options: ChildOptions = {}): Promise<T> {
  const file = fileURLToPath(module)
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...(options.flags ?? []), '--import', 'tsx', file, ...(options.args ?? [])],
      { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'inherit'] },
    )
    if (options.input !== undefined) child.stdin?.end(JSON.stringify(options.input))
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`${file} exited with ${code}`)),
    )
  })
}
