/**
 * What a command needs from its process, so the commands run in tests as in the shell: output
 * streams and the environment (where secrets come from: never from flags that `ps` shows).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>
  out(line: string): void
  err(line: string): void
}

/** A user mistake: printed as one line, no stack, exit status 1. */
export class UsageError extends Error {}

export interface Command {
  readonly name: string
  readonly summary: string
  readonly usage: string
  run(args: string[], io: CliIo): Promise<number>
}

type Options = NonNullable<ParseArgsConfig['options']>

export type ParsedFlags<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: 'boolean' }
    ? O[K] extends { multiple: true }
      ? boolean[]
      : boolean
    : O[K] extends { multiple: true }
      ? string[]
      : string
} & { help?: boolean }

/** `parseArgs` with `--help`, strict, no positionals; its errors become one-line usage errors. */
export function parse<O extends Options>(args: string[], options: O): ParsedFlags<O> {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values as ParsedFlags<O>
  } catch (error) {
    // node's message names the bad flag; keep its first line only.
    throw new UsageError((error as Error).message.split('\n')[0])
  }
}

/** The value of a required flag or environment variable. */
export function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing ${what}`)
  return value
}

/** Whether WHATWG's URL parser takes `url` (URL.canParse is Node 19.9+). */
function parses(url: string): boolean {
  try {
    new URL(url, 'postgres://base')
    return true
  } catch {
    return false
  }
}

/**
 * The connection URL from `--database-url` or else the environment variable `variable`, checked
 * as node-postgres will read it (pg-connection-string: a value starting with `/` is a socket
 * directory; spaces and stray `%` are encoded; an empty host is allowed). A password with `/`,
 * `#`, `?` or `:` left un-encoded makes it invalid, which pg reports as `Invalid URL` without
 * saying which URL: this says which, and never echoes it (it holds a password).
 * @throws UsageError naming the flag or the variable.
 */
export function databaseUrl(flag: string | undefined, env: CliIo['env'], variable: string): string {
  const name = flag === undefined ? variable : '--database-url'
  const url = required(flag ?? env[variable], `${variable} (or --database-url)`)
  if (url.startsWith('/')) return url
  const encoded = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url)
    ? encodeURI(url).replace(/%25(\d\d)/g, '%$1')
    : url
  if (!parses(encoded) && !parses(encoded.replace('@/', '@___DUMMY___/'))) {
    throw new UsageError(
      `${name} is not a valid URL: percent-encode @ : / # ? % in the password (@ → %40)`,
    )
  }
  return url
}
