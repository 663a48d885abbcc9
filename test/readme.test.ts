/**
 * The reference tables of docs/errors.md list every stable code, with the status the code carries:
 * a code added to the catalogue or the checks without its row fails here.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { databaseFindingCodes } from '../src/db/checks/codes.ts'
import { errorCatalogue, type KeyholeErrorCode } from '../src/errors.ts'

const readme = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8')
const rows = new Map(
  readme
    .split('\n')
    .filter((line) => line.startsWith('| `KH_'))
    .map((line) => line.split('|').map((cell) => cell.trim()))
    .map(([, code, ...rest]) => [String(code).replaceAll('`', ''), rest]),
)

t.test('every error code has its row, with its status', async (t) => {
  for (const code of Object.keys(errorCatalogue) as KeyholeErrorCode[]) {
    t.equal(rows.get(code)?.[0], String(errorCatalogue[code].statusCode), code)
  }
})

t.test('every start-up finding code has its row, with a fix', async (t) => {
  for (const code of databaseFindingCodes) {
    t.ok((rows.get(code)?.[1] ?? '').length > 0, code)
  }
  const listed = [...rows.keys()].filter((code) => code.startsWith('KH_DB_'))
  t.same(listed, [...databaseFindingCodes], 'no row for a code that does not exist, same order')
})
