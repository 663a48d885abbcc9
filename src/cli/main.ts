/**
 * The `keyhole` command: `keyhole <command> [flags]`. User mistakes print one line on stderr and
 * exit 1, never a stack; secrets come from the environment and are never echoed.
 */
import { checkCommand } from './check-command.ts'
import { UsageError, type CliIo, type Command } from './io.ts'
import { migrateCommand } from './migrate-command.ts'
import { policiesCommand } from './policies-command.ts'
import { setupCommand } from './setup-command.ts'
import { testPoliciesCommand } from './test-policies-command.ts'
import { tokenCommand } from './token-command.ts'

const commands: readonly Command[] = [
  setupCommand,
  migrateCommand,
  checkCommand,
  policiesCommand,
  tokenCommand,
  testPoliciesCommand,
]

const usage = `usage: keyhole <command> [flags]   (keyhole <command> --help)

${commands.map((c) => `  ${c.name.padEnd(13)} ${c.summary}`).join('\n')}`

/** Runs the command line `args` (without `node` and the script) and returns the exit status. */
export async function run(args: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = args
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage)
    return name === undefined ? 1 : 0
  }
  const command = commands.find((c) => c.name === name)
  if (command === undefined) {
    io.err(`keyhole: unknown command ${JSON.stringify(name.slice(0, 40))}\n${usage}`)
    return 1
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    // One line, no stack: a usage mistake, a keyhole error (its code), or the database's message.
    const e = error as { message?: unknown; code?: unknown }
    const code = typeof e.code === 'string' && !(error instanceof UsageError) ? ` [${e.code}]` : ''
    /* c8 ignore next: commands throw Error instances; the fallback only guards a stray throw */
    const message = String(e.message ?? error).split('\n')[0]
    io.err(`keyhole ${name}: ${message}${code}`)
    return 1
  }
}
