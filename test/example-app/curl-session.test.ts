/**
 * The curl session of example-app/README.md ("A curl session through the four rules"), run as
 * written — its `sh` blocks, with bash, curl, jq and `token.ts` — against the Fastify forum and
 * the Express forum (`--express`). The one change: `localhost:3000` becomes the test server's
 * address. The first block starts the server, which the test does itself.
 *
 * Every `api` call prints `<body> <status>`; each is checked against the comment the README shows
 * with it (on its line or the next): the status always, the whole line when the comment shows the
 * body (`# {"statusCode":403,…} 403`). Every `list` call prints a projection of a thread list,
 * checked whole against its comment (`# [{"title":…}]`). A call without such a comment fails the
 * test, so the README cannot show an answer the forum does not give.
 */
import t from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { uncoveredChildEnv } from '../helpers/child-env.ts'
import { forumAdapters, startForum, uuidPattern } from './helpers/forum.ts'

const root = new URL('../../', import.meta.url)
const readme = readFileSync(new URL('example-app/README.md', root), 'utf8')

/** The `sh` blocks of the section whose heading names the curl session. */
function sessionBlocks(markdown: string): string[] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((line) => /^#+ .*curl session/i.test(line))
  if (start === -1) throw new Error('example-app/README.md has no "curl session" section')
  const level = (lines[start] as string).indexOf(' ')
  const blocks: string[] = []
  let block: string[] | undefined
  for (const line of lines.slice(start + 1)) {
    if (block === undefined && /^#+ /.test(line) && line.indexOf(' ') <= level) break
    if (block === undefined && line === '```sh') block = []
    else if (block !== undefined && line === '```') {
      blocks.push(block.join('\n'))
      block = undefined
    } else block?.push(line)
  }
  return blocks
}

/** Where a shell line's comment (`# …` outside quotes) starts, or -1. */
function commentStart(line: string): number {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') quote = c
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return i
  }
  return -1
}

/** The comment of a shell line, or undefined. */
function commentOf(line: string): string | undefined {
  const start = commentStart(line)
  return start === -1 ? undefined : line.slice(start + 1).trim()
}

interface Expected {
  /** The command as the README writes it (its first line). */
  readonly command: string
  /** The status an `api` call prints last (a `list` call prints none). */
  readonly status?: number
  /** The whole output line, when the README shows the body. */
  readonly line?: string
}

/** What each `api` call of `script` must print, in order. */
function expectations(script: string): Expected[] {
  const lines = script.split('\n')
  const expected: Expected[] = []
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i] as string
    const kind = /^(api|list)\s/.exec(first)?.[1]
    if (kind === undefined) continue
    let last = i
    while ((lines[last] as string).trimEnd().endsWith('\\')) last++
    const next = lines[last + 1]
    // A `list` call's own comment (if any) explains it; its answer is on the next line.
    const comment =
      (kind === 'api' ? commentOf(lines[last] as string) : undefined) ??
      (next !== undefined && next.startsWith('#') ? commentOf(next) : undefined)
    const command = (commentStart(first) === -1 ? first : first.slice(0, commentStart(first)))
      .replace(/\\$/, '')
      .trim()
    if (kind === 'list') {
      if (comment === undefined || !comment.startsWith('[')) {
        throw new Error(`the README shows no list for: ${first}`)
      }
      expected.push({ command, line: comment })
      i = last
      continue
    }
    const status = comment?.match(/\b[1-5]\d\d\b(?!.*\b[1-5]\d\d\b)/)?.[0]
    if (comment === undefined || status === undefined) {
      throw new Error(`the README shows no status for: ${first}`)
    }
    expected.push({
      command,
      status: Number(status),
      ...(comment.startsWith('{') ? { line: comment } : {}),
    })
    i = last
  }
  return expected
}

const blocks = sessionBlocks(readme)
const [server, ...session] = blocks

t.test('the README session: the server block, then the requests', async (t) => {
  t.match(server, /npm run example -- --fresh/, 'the first block starts the forum')
  t.match(session.join('\n'), /^api\(\) \{/m, 'the session defines api()')
  t.ok(expectations(session.join('\n')).length >= 8, 'every rule has its calls')
})

const missing = ['bash', 'curl', 'jq'].filter(
  (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
)

const run = promisify(execFile)

const skip = missing.length > 0 && `the session needs ${missing.join(', ')} on the PATH`

for (const adapter of forumAdapters) {
  const name = `${adapter}: every request of the session answers as the README shows`
  t.test(name, { skip }, async (t) => {
    const forum = await startForum(t, { adapter })
    let base = forum.baseUrl
    if (base === undefined) {
      await forum.app.listen({ port: 0, host: '127.0.0.1' })
      const address = forum.app.server.address() as { port: number }
      base = `http://127.0.0.1:${address.port}`
    }
    const expected = expectations(session.join('\n'))
    const script = session.join('\n').replaceAll('localhost:3000', base.replace('http://', ''))
    const ids = 'printf "ids %s %s %s %s\\n" "$BOOKS" "$CHESS" "$THREAD" "$POST"'
    const { stdout } = await run('bash', ['-c', `set -euo pipefail\n${script}\n${ids}\n`], {
      cwd: root,
      env: uncoveredChildEnv({
        ...process.env,
        JWT_SECRET: forum.settings.jwtSecret,
        JWT_ISSUER: forum.settings.jwtIssuer,
        JWT_AUDIENCE: forum.settings.jwtAudience,
      }),
      timeout: 90_000,
    })
    const output = stdout.trimEnd().split('\n')
    const idLine = output.pop() as string
    const [, , , thread, post] = idLine.split(' ') as string[]
    for (const id of idLine.split(' ').slice(1)) {
      t.match(id, uuidPattern, 'the IDs the session picked out with jq')
    }
    t.equal(output.length, expected.length, 'one output line per api call')
    expected.forEach((want, n) => {
      const got = output[n] ?? ''
      if (want.status !== undefined) {
        t.equal(Number(got.slice(-3)), want.status, `${want.command} → ${want.status}`)
      }
      if (want.line !== undefined) t.equal(got, want.line, `${want.command}: the body shown`)
    })
    const { rows } = await forum.db.pool.query<{ threads: number; posts: number }>(
      `SELECT (SELECT count(*)::int FROM discussion_threads WHERE id = $1) AS threads,
              (SELECT count(*)::int FROM posts WHERE id = $2 OR thread_id = $1) AS posts`,
      [thread, post],
    )
    t.same(rows, [{ threads: 0, posts: 0 }], 'the admin deleted the thread, and its posts with it')
    t.equal(await forum.count('discussion_threads'), 3, "the list's three threads stay")
  })
}
