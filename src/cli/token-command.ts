import { SignJWT } from 'jose'
import { parse, required, UsageError, type Command } from './io.ts'

const PERMISSION = /^([^:\s]+):([A-Za-z_][A-Za-z0-9_]*)$/

export const tokenCommand: Command = {
  name: 'token',
  summary: 'mint a development HS256 token (never for production)',
  usage: `keyhole token --subject SUB [--permission GROUP:ROLE]... [--issuer ISS] [--audience AUD] [--expires-in 1h] [--claim permissions]

The HMAC secret comes from KEYHOLE_TOKEN_SECRET (at least 32 bytes); it is never printed.
The token is printed on stdout.`,
  async run(args, io) {
    const flags = parse(args, {
      subject: { type: 'string' },
      permission: { type: 'string', multiple: true },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      'expires-in': { type: 'string' },
      claim: { type: 'string' },
    })
    if (flags.help) return (io.out(this.usage), 0)
    const secret = new TextEncoder().encode(
      required(io.env.KEYHOLE_TOKEN_SECRET, 'KEYHOLE_TOKEN_SECRET'),
    )
    if (secret.length < 32) throw new UsageError('KEYHOLE_TOKEN_SECRET must be at least 32 bytes')
    const permissions = (flags.permission ?? []).map((p) => {
      const m = PERMISSION.exec(p)
      if (!m)
        throw new UsageError(
          `--permission must be GROUP:ROLE, got ${JSON.stringify(p.slice(0, 40))}`,
        )
      return { group: m[1], role: m[2] }
    })
    let jwt = new SignJWT({ [flags.claim ?? 'permissions']: permissions })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(required(flags.subject, '--subject'))
      .setIssuedAt()
    if (flags.issuer !== undefined) jwt = jwt.setIssuer(flags.issuer)
    if (flags.audience !== undefined) jwt = jwt.setAudience(flags.audience)
    try {
      jwt = jwt.setExpirationTime(flags['expires-in'] ?? '1h')
    } catch {
      throw new UsageError('--expires-in must be a duration such as 15m, 1h or 12 hours')
    }
    io.out(await jwt.sign(secret))
    return 0
  },
}
