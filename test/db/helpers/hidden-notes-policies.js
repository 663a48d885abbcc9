// JavaScript on purpose, as test/cli/helpers/notes-policies.js: `keyhole check --policies` loads it.
export { hiddenNotesPolicies as policies } from './hidden-columns.ts'
