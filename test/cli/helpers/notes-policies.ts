// TypeScript on purpose: `keyhole check` loads it through the application's (the repository's)
// tsx, which imports keyhole's source anew, a second copy whose guards loadPolicies makes again
// as its own. Only a child process loads it (see policies.js for why not this one).
export { notesPolicies as policies } from '../../db/helpers/keyhole.ts'
