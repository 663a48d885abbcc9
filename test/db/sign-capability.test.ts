/**
 * The signed capability value: its format, its key rules, and the HMAC pads the database uses.
 */
import { createHmac } from 'node:crypto'
import t from 'tap'
import { createCapabilitySigner, REUSE_MS } from '../../src/db/sign-capability.ts'
import { generateSigningKey, hmacPads, parseSigningKey } from '../../src/db/signing-key.ts'
import { capability } from './helpers/keyhole.ts'

const key = Buffer.alloc(32, 3)

t.test('the value: hex(HMAC-SHA-256(key, "a." + body)) + body', async (t) => {
  const signer = createCapabilitySigner(key)
  const holder = capability({
    subject: 'alice',
    groups: { member: ['g1', 'g2'], moderator: ['g2'], admin: [] },
    expiresAt: 2000000000,
  })
  const value = signer.sign(holder, 1700000000000.7)
  const [mac, body] = [value.slice(0, 64), value.slice(64)]
  t.equal(mac, createHmac('sha256', key).update(`a.${body}`).digest('hex'))
  t.equal(body.slice(0, 15), '001700000000000', 'issued at: ms, 15 digits')
  t.equal(body.slice(15, 27), '002000000000', "the token's exp: s, 12 digits")
  t.equal(body[27], '0', 'not admin')
  t.same(body.slice(28).split('\n'), [
    '{"member","moderator","admin"}',
    '{2,1,0}',
    '{"g2","g1"}',
    '"alice"',
  ])
  t.equal(
    signer.sign(capability({ subject: 'a "b"\nc', admin: true }), 1).slice(64 + 27),
    '1{"member","moderator","admin"}\n{0,0,0}\n{}\n"a \\"b\\"\\nc"',
    'admin; the subject as JSON, newlines and quotes escaped',
  )
  t.throws(
    () => signer.sign(capability({ groups: { member: ['a\nb'] } })),
    /newline/,
    'a newline in an ID cannot reach the format',
  )
  t.equal(signer.sign(holder, 1700000000000), value, 'deterministic for one capability and time')
  t.equal(signer.sign(capability(), 1).slice(79, 91), '000000000000', 'no exp: zeros')
  t.equal(
    signer.sign(capability({ expiresAt: 0.5 }), 1).slice(79, 91),
    '000000000001',
    'an exp that rounds to 0 is not "none"',
  )
  t.equal(
    signer.sign(capability({ expiresAt: 1e13 }), 1).slice(79, 91),
    '999999999999',
    'an exp beyond 12 digits is clamped',
  )
  t.match(signer.sign(capability()), /^[0-9a-f]{64}[0-9]{27}[01]\{/, 'defaults to now')
  t.same(Object.keys(signer), ['sign', 'signSystem'], 'the key is not a property')
})

t.test(
  'a value is sent again for the same capability within REUSE_MS, never past it',
  async (t) => {
    const realNow = Date.now
    let now = 1_700_000_000_000
    Date.now = () => now
    t.teardown(() => {
      Date.now = realNow
    })
    const signer = createCapabilitySigner(key)
    const other = createCapabilitySigner(Buffer.alloc(32, 4))
    const holder = capability({ subject: 'alice', groups: { member: ['g1'] } })
    const first = signer.sign(holder)
    t.equal(first.slice(64, 79), '001700000000000', 'issued now')
    now += REUSE_MS - 1
    t.equal(signer.sign(holder), first, 'the same value within REUSE_MS')
    t.equal(
      signer.sign(holder, now),
      signer.sign(holder, now),
      'an explicit time is signed as asked',
    )
    t.not(signer.sign(holder, now), first)
    t.equal(signer.sign(holder), first, '… and leaves the value to reuse')
    const cases: [string, number | undefined, ReturnType<typeof capability>, string][] = [
      ['REUSE_MS later: signed anew', 1, holder, '001700000001000'],
      ['a clock set back: signed anew', -5000, holder, '001699999996000'],
      ['another capability: its own value', 0, capability({ subject: 'bob' }), '001699999996000'],
    ]
    for (const [name, step, who, issued] of cases) {
      now += step as number
      const value = signer.sign(who)
      t.equal(value.slice(64, 79), issued, name)
      t.equal(
        value.slice(0, 64),
        createHmac('sha256', key)
          .update(`a.${value.slice(64)}`)
          .digest('hex'),
      )
    }
    const byOther = other.sign(holder)
    t.equal(
      byOther.slice(0, 64),
      createHmac('sha256', Buffer.alloc(32, 4))
        .update(`a.${byOther.slice(64)}`)
        .digest('hex'),
      "another signer's key: never the first signer's value",
    )
    t.not(signer.sign(holder), byOther, 'and the first signer signs anew after it')
  },
)

t.test('keys: at least 32 bytes, as bytes or base64/base64url text', async (t) => {
  t.equal(parseSigningKey(key.toString('base64url')).length, 32)
  t.equal(parseSigningKey(key.toString('base64')).length, 32)
  t.equal(parseSigningKey(new Uint8Array(40)).length, 40)
  t.equal(parseSigningKey(generateSigningKey()).length, 32)
  const bad: [string, unknown][] = [
    ['31 bytes', Buffer.alloc(31)],
    ['short text', 'c2hvcnQ'],
    ['not base64', 'this is not base64 but long enough to be a key!!'],
    ['a number', 42],
    ['missing', undefined],
  ]
  for (const [name, value] of bad) {
    t.throws(
      () => createCapabilitySigner(value as string),
      { code: 'KH_INVALID_OPTIONS', message: /signingKey/ },
      name,
    )
  }
  t.throws(() => parseSigningKey('short', 'KEYHOLE_SIGNING_KEY'), {
    message: /KEYHOLE_SIGNING_KEY/,
  })
})

t.test('HMAC pads: sha256(outer || sha256(inner || m)) equals HMAC-SHA-256', async (t) => {
  const { createHash } = await import('node:crypto')
  for (const k of [key, Buffer.alloc(64, 1), Buffer.alloc(100, 2)]) {
    const { innerPad, outerPad } = hmacPads(k)
    const inner = createHash('sha256')
      .update(Buffer.concat([innerPad, Buffer.from('message')]))
      .digest()
    const outer = createHash('sha256')
      .update(Buffer.concat([outerPad, inner]))
      .digest()
    t.same(outer, createHmac('sha256', k).update('message').digest(), `${k.length}-byte key`)
  }
})

t.test('a system grant: hex(HMAC-SHA-256(key, "s." + body)) + body', async (t) => {
  const signer = createCapabilitySigner(key)
  const value = signer.signSystem(['read:notes', 'delete:app.notes'], 1700000000000)
  const [mac, body] = [value.slice(0, 64), value.slice(64)]
  t.equal(mac, createHmac('sha256', key).update(`s.${body}`).digest('hex'))
  t.equal(body, '001700000000000{"read:notes","delete:app.notes"}')
  t.match(signer.signSystem([]), /^[0-9a-f]{64}[0-9]{15}\{\}$/, 'defaults to now')
})
