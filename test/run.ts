/**
 * `npm test`: starts one embedded PostgreSQL for the whole run (unless DATABASE_URL names a
 * server), runs tap with DATABASE_URL pointing at it, stops the server and prints a last line
 * `tests: N passed, M failed` for CI.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/embedded-postgres.ts'

/** On a server we did not start, drop the databases and roles the test files created. */
async function dropTestObjects(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const dbs = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname ~ '^kh_[0-9a-f]{10}$'`,
    )
    for (const { datname } of dbs.rows) {
      await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`)
    }
    const roles = await client.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE rolname ~ '^kh_[0-9a-f]{10}'`,
    )
    for (const { rolname } of roles.rows) {
      // DROP OWNED: the migration roles hold SET on a parameter (the sealed capability).
      const role = client.escapeIdentifier(rolname)
      await client.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`)
    }
  } finally {
    await client.end()
  }
}

let server: RunningPostgres | undefined
if (!process.env.DATABASE_URL) {
  // A throw-away server: no crash safety needed, so no fsync waits on every commit, CREATE
  // DATABASE and checkpoint (the tests do not depend on durability across a crash).
  server = await startEmbeddedPostgres({
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  })
  process.env.DATABASE_URL = server.url
  console.log('# embedded PostgreSQL started on', new URL(server.url).host)
} else {
  console.log('# using the PostgreSQL server named by DATABASE_URL')
}

const tapBin = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
// Every test process tap starts transpiles its TypeScript through helpers/ts-loader.mjs (TypeScript's
// transpile as ts-node does it, cached on disk across processes) rather than through ts-node.
const tsLoader = new URL('./helpers/ts-loader.mjs', import.meta.url).href
const nodeOptions = [process.env.NODE_OPTIONS, `--import=${tsLoader}`].filter(Boolean).join(' ')
const args = process.argv.slice(2)
let passed = 0
let failed = 0
let code = 1
try {
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [tapBin, ...args], {
      stdio: ['inherit', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: nodeOptions },
    })
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      // tap's base reporter closes with "# { total: N, pass: P, fail: F, ... }".
      const text = chunk.toString()
      for (const m of text.matchAll(/# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/g)) {
        passed = Number(m[2])
        failed = Number(m[3] ?? 0)
      }
    })
    child.on('close', (c) => resolve(c ?? 1))
  })
} finally {
  if (server) await server.stop()
  else await dropTestObjects(process.env.DATABASE_URL as string)
}
if (code !== 0 && failed === 0) failed = 1
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exit(code)
