import { policySql } from '../db/policy-sql.ts'
import { parse, required, type Command } from './io.ts'
import { loadPolicies, policiesModuleHelp } from './load-policies.ts'
import { groupIdType } from './migrate-command.ts'

export const policiesCommand: Command = {
  name: 'policies',
  summary: 'print the RLS SQL generated from a policies module',
  usage: `keyhole policies --policies MODULE --runtime-role NAME [--group-id-type uuid]

${policiesModuleHelp}`,
  async run(args, io) {
    const flags = parse(args, {
      policies: { type: 'string' },
      'runtime-role': { type: 'string' },
      'group-id-type': { type: 'string' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    const type = groupIdType(flags['group-id-type'])
    const runtimeRole = required(flags['runtime-role'], '--runtime-role')
    const policies = await loadPolicies(required(flags.policies, '--policies'))
    io.out(policySql(policies, { runtimeRole, groupIdType: type }).trimEnd())
    return 0
  },
}
