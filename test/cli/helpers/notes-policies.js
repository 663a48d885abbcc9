// JavaScript on purpose: see policies.js beside it.
export { notesPolicies as policies } from '../../db/helpers/keyhole.ts'
