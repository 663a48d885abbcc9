export { notesPolicies as policies } from '../../db/helpers/keyhole.ts'
