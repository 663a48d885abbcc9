/**
 * Splitting the qualified names of the options (validated by options.ts) into the parts the
 * catalogs store: quoted parts unescaped, plain parts folded to lower case as SQL does.
 */
const part = String.raw`(?:"((?:[^"]|"")+)"|([^."(]+))`

function unquote(match: RegExpExecArray, quoted: number): string {
  const q = match[quoted]
  return q !== undefined ? q.replace(/""/g, '"') : match[quoted + 1]!.toLowerCase()
}

/** The schema of `schema.name` or `schema.name(args)`. */
export function schemaOf(qualified: string): string {
  return unquote(new RegExp(`^${part}\\.`).exec(qualified)!, 1)
}

/** The name of `schema.name(args)` without its schema. */
export function functionNameOf(signature: string): string {
  return unquote(new RegExp(`^${part}\\.${part}\\(`).exec(signature)!, 3)
}
