// Values for the edge fuzz suites: what an attacker or a confused client sends. Nesting past
// the depth limit, sizes near and past the value bound, unicode edge cases, numbers a JSON
// encoder should never see (the frame text carries `1e999`, which parses as Infinity, and
// `-0`), and strings that look like numbers. `SELF` and `HUGE` are markers: `frameText`
// replaces them in the encoded text with the caller's pid and with `1e999`.
import fc from 'fast-check'

export const SELF = '§self§'
const HUGE = '§huge§'

/** JSON text of `value` with the markers replaced. */
export function frameText(value: unknown, pid: string): string {
  return JSON.stringify(value)
    .replaceAll(JSON.stringify(HUGE), '1e999')
    .replaceAll(SELF, pid.replaceAll('"', ''))
}

const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value }
  return value
}

export const text = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom(
    '',
    '\u0000',
    '\ud800',
    'a\udfff',
    '😀',
    '\uffff',
    '\u2028',
    'NaN',
    'Infinity',
    '-0',
    '1e999',
    '__proto__',
    '*',
    'a,b=c',
    '$kv.x',
    '../..',
    '%00',
    SELF,
    `${SELF}.1`,
  ),
  fc.integer({ min: 1, max: 5 }).map((kib) => 'x'.repeat(kib * 1024)),
)

export const number = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, -1, 1.5, 1500.5, 0.1, 1e308, -1e308, 5e-324, 2 ** 31, 2 ** 53, 2 ** 64),
  fc.constant(HUGE),
)

const leaf = fc.oneof(fc.constant(null), fc.boolean(), number, text)

/** Any JSON-ish value: small and plausible, or deep (up to 3× the depth limit), or large. */
export const nasty: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: leaf },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.integer({ min: 60, max: 200 }), leaf).map(([d, l]) => nested(d, l)),
  },
  { weight: 1, arbitrary: fc.array(leaf, { maxLength: 200 }) },
  { weight: 1, arbitrary: fc.dictionary(text, leaf, { maxKeys: 6 }) },
)

/** Either a plausible value (so the call gets past argument checks) or a nasty one. */
const or = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 2, arbitrary: plausible }, { weight: 1, arbitrary: nasty })

export const kind = or(fc.constantFrom('fz.a', 'fz.b'))
export const recordId = or(fc.constantFrom('x', 'y', '1'))
const selector = fc.record(
  {
    id: or(fc.constantFrom('x*', '*', 'x')),
    fields: or(fc.constantFrom('a=1', 'a!=', 'b.c=2')),
    labels: or(fc.constantFrom('env=prod', '!canary', 'tier in (a,b)')),
    limit: or(fc.integer({ min: 1, max: 5 })),
    continue: nasty,
    fromRevision: or(fc.nat(20)),
  },
  { requiredKeys: [] },
)
const options = fc.record(
  {
    ttl: or(fc.integer({ min: 1, max: 10_000 })),
    labels: or(fc.constant({ env: 'prod' })),
    ifRevision: or(fc.nat(5)),
    owner: or(fc.constantFrom(null, 'self', SELF)),
    patch: or(fc.constant({ busy: true })),
    orderBy: or(fc.constantFrom('id', 'revision')),
    prefix: or(fc.constant('k')),
    glob: or(fc.constant('k*')),
  },
  { requiredKeys: [] },
)
const op = fc.record(
  {
    op: or(fc.constantFrom('assert', 'retract', 'claim')),
    kind,
    id: recordId,
    data: nasty,
    ttl: or(fc.integer({ min: 1, max: 10_000 })),
    patch: or(fc.constant({ busy: true })),
    optional: fc.boolean(),
  },
  { requiredKeys: ['op'] },
)
const condition = fc.record(
  { kind, id: recordId, revision: or(fc.nat(5)), exists: fc.boolean(), field: text, equals: nasty },
  { requiredKeys: ['kind'] },
)
const target = fc.oneof(
  fc.constant(SELF),
  fc.record({ kind, id: recordId }),
  fc.record({ group: or(fc.constant('g')), scope: or(fc.constant('default')) }),
  fc.record({ name: or(fc.constant('n')), fence: or(fc.nat(5)) }),
  nasty,
)

/** Arguments for any operation: every name an operation reads, plausible or nasty. */
export const args = fc.record(
  {
    pid: or(fc.constantFrom(SELF, `${SELF}.1`)),
    from: or(fc.constant(SELF)),
    pids: or(fc.constantFrom(SELF, [SELF])),
    kind,
    id: recordId,
    data: nasty,
    options: fc.oneof(options, selector, nasty),
    request: fc.oneof(
      fc.record({
        then: fc.array(op, { maxLength: 4 }),
        if: fc.array(condition, { maxLength: 2 }),
      }),
      nasty,
    ),
    target,
    message: nasty,
    scope: or(fc.constant('default')),
    group: or(fc.constant('g')),
    meta: nasty,
    name: or(fc.constantFrom('n', 'child')),
    bucket: or(fc.constantFrom('b', 'config')),
    key: or(fc.constantFrom('k', 'k/1')),
    value: nasty,
    glob: or(fc.constant('*')),
    reason: or(fc.constantFrom('normal', 'crash')),
  },
  { requiredKeys: [] },
)
