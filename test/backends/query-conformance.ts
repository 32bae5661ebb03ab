import assert from 'node:assert/strict'
import { it } from 'node:test'
import type { TestContext } from 'node:test'
import fc from 'fast-check'
import type { Backend } from '../../src/backends/index.js'
import type { DataspaceRecord, Selector } from '../../src/model/types.js'
import { compileGlob, parseFieldSelector, parseLabelSelector } from '../../src/query/index.js'
import type { BackendFactory } from './fixtures.js'
import { commit, compare, record, withStore, nextBatchId } from './fixtures.js'

/** Declared indexes of the generated kind; `spec.zone`, `n`, `flag` and `a.0` stay unindexed. */
const INDEXED = ['pool', 'tags', 'spec.pool']
const PATHS = [...INDEXED, 'spec.zone', 'n', 'flag', 'pool.x', 'a.0', 'missing']
/** Values chosen to hit the string-form corners: numbers, booleans, empties, escapes. */
const VALUES = [
  'a',
  'b',
  '',
  'true',
  'false',
  '1',
  '1.5',
  '-2',
  '1e-7',
  '0.0000001',
  '1e+21',
  'x,y',
  '[]',
  'null',
]

/** Every JSON shape the string-form rules treat differently (field-values.ts). */
const CORNER_VALUES: readonly unknown[] = [
  'a',
  '',
  'true',
  'x,y',
  '[]',
  'null',
  '1',
  '0.0000001',
  '1e-7',
  true,
  false,
  0,
  1,
  1.5,
  -2,
  1e-7,
  1e21,
  null,
  [],
  ['a'],
  [null],
  [''],
  [1e-7],
  [1e21],
  [true],
  [1],
  [['a']],
  [{ x: 'a' }],
  { x: 'a' },
  ['a', 'b', 1.5],
]

function cornerData(): unknown[] {
  const out: unknown[] = [
    {},
    null,
    'a',
    ['a'],
    { spec: 'a' },
    { spec: ['a'] },
    { a: ['a'] },
    { a: { 0: 'a' } },
  ]
  for (const v of CORNER_VALUES) {
    out.push({ pool: v }, { tags: v }, { spec: { pool: v, zone: v } }, { n: v }, { pool: { x: v } })
  }
  return out
}

const LABEL_SETS: readonly Record<string, string>[] = [
  {},
  { tier: 'web' },
  { tier: 'api', env: '' },
  { env: 'web', count: '3' },
  { count: '10' },
  { tier: '', count: '-1' },
  { env: 'api', count: 'x' },
]
const LABEL_TERMS = [
  'tier=web',
  'tier!=api',
  'tier=',
  'tier!=',
  'env in (web,api)',
  'env in (,web)',
  'env notin (api)',
  'env notin (,)',
  'tier',
  '!env',
  'count>3',
  'count<10',
  'count>0',
]

const scalar = fc.oneof(
  fc.constantFrom('a', 'b', '', 'x,y', 'true', '1', '1e-7', '[]', 'null'),
  fc.boolean(),
  fc.constantFrom(0, 1, 1.5, -2, 1e-7, 1e21),
  fc.constant(null),
)
const element = fc.oneof(scalar, fc.constant(['a']), fc.constant({ x: 'a' }))
const value = fc.oneof(scalar, fc.array(element, { maxLength: 3 }), fc.constant({ x: 'a' }))
const data = fc.record(
  {
    pool: value,
    tags: value,
    spec: fc.oneof(fc.record({ pool: value, zone: value }, { requiredKeys: [] }), scalar),
    n: fc.constantFrom(1, 1.5, 1e21, 1e-7, '1'),
    flag: fc.boolean(),
    a: fc.constantFrom(['a'], { 0: 'a' }, 'a'),
  },
  { requiredKeys: [] },
)
const labels = fc.dictionary(
  fc.constantFrom('tier', 'env', 'count'),
  fc.constantFrom('web', 'api', '', '3', '10', '-1'),
  { maxKeys: 3 },
)
const records = fc.uniqueArray(
  fc.record({
    id: fc.tuple(fc.constantFrom('w-', 'wa', 'x', 'w'), fc.nat(40)).map(([p, n]) => `${p}${n}`),
    data,
    labels,
    owner: fc.constantFrom(null, 'p1', 'p2'),
  }),
  { selector: (r) => r.id, maxLength: 40 },
)

const escape = (text: string): string => text.replace(/[\\,=]/g, '\\$&')
const fieldTerm = fc
  .tuple(fc.constantFrom(...PATHS), fc.constantFrom('=', '!='), fc.constantFrom(...VALUES))
  .map(([path, op, v]) => `${path}${op}${escape(v)}`)
const labelTerm = fc.constantFrom(...LABEL_TERMS)
const selector: fc.Arbitrary<Selector> = fc.record(
  {
    id: fc.constantFrom('w-*', 'w*', 'x1', '*', 'w-1?', '*a*', 'wa\\*'),
    owner: fc.constantFrom('p1', 'p2'),
    fields: fc.array(fieldTerm, { minLength: 1, maxLength: 3 }).map((terms) => terms.join(',')),
    labels: fc.array(labelTerm, { minLength: 1, maxLength: 2 }).map((terms) => terms.join(',')),
  },
  { requiredKeys: [] },
)

/** The engine's in-memory answer: what a backend's superset must contain, after filtering. */
function matcher(s: Selector): (r: DataspaceRecord) => boolean {
  const id = s.id === undefined ? undefined : compileGlob(String(s.id))
  const fields = s.fields === undefined ? undefined : parseFieldSelector(s.fields)
  const labelSelector = s.labels === undefined ? undefined : parseLabelSelector(s.labels)
  return (r) =>
    (id === undefined || id.test(r.id)) &&
    (s.owner === undefined || r.owner === s.owner) &&
    (fields === undefined || fields.matches(r.data)) &&
    (labelSelector === undefined || labelSelector.matches(r.labels))
}

/** Every page of `query`, following `after` from the last id of each page. */
async function allPages(
  backend: Backend,
  kind: string,
  s: Selector,
  limit: number,
): Promise<DataspaceRecord[]> {
  const out: DataspaceRecord[] = []
  for (let after: string | undefined; ;) {
    const page = await backend.query!(kind, s, after === undefined ? { limit } : { limit, after })
    assert.ok(page.length <= limit, `a page holds at most ${limit}`)
    out.push(...page)
    if (page.length < limit) return out
    after = page[page.length - 1]!.id
  }
}

/**
 * Skips a query case for a backend without the `query` capability, saying why and where it is
 * covered: PostgreSQL claims it and runs every case; SQLite keeps every kind resident in the
 * engine, so it answers no queries until non-resident kinds exist (issue 5, still open).
 */
function lacksQuery(t: TestContext, name: string, has: boolean): boolean {
  if (!has)
    t.skip(
      `${name} does not answer queries itself (capability query is false; PostgreSQL runs this case)`,
    )
  return !has
}

/** Query pushdown: a superset in id order that, filtered, is exactly the in-memory answer. */
export function queryConformance(name: string, factory: BackendFactory): void {
  it('answers query like the in-memory filter (pushdown never misses a match)', async (t) => {
    await withStore(factory, async (store) => {
      const { backend } = await store.open()
      if (lacksQuery(t, name, store.capabilities.query && backend.query !== undefined)) return
      const seed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
      t.diagnostic(`fast-check seed ${seed} (replay with FC_SEED=${seed})`)
      let revision = 0
      await fc.assert(
        fc.asyncProperty(
          records,
          fc.array(fc.tuple(selector, fc.integer({ min: 1, max: 7 })), {
            minLength: 1,
            maxLength: 12,
          }),
          async (rows, queries) => {
            revision += 1
            const kind = `q${revision}`
            // fast-check builds null-prototype objects; stored data is plain JSON.
            const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T
            const stored = rows.map((r) =>
              record(kind, r.id, revision, { ...r, data: plain(r.data), labels: plain(r.labels) }),
            )
            await backend.write({
              id: nextBatchId(),
              commits: [commit(revision, stored)],
              kinds: [{ kind, indexes: INDEXED }],
              sessions: { put: [], delete: [] },
            })
            for (const [s, limit] of queries) {
              const got = await allPages(backend, kind, s, limit)
              const ids = got.map((r) => r.id)
              assert.deepEqual(ids, [...ids].sort(compare), 'pages come in id order')
              assert.equal(new Set(ids).size, ids.length, 'no record twice across pages')
              assert.ok(got.every((r) => r.kind === kind))
              const test = matcher(s)
              const expected = stored.filter(test).sort((a, b) => compare(a.id, b.id))
              assert.deepEqual(got.filter(test), expected, `selector ${JSON.stringify(s)}`)
            }
          },
        ),
        { seed, numRuns: 25 },
      )
    })
  })

  it('answers every one-term field and label selector over corner-case data', async (t) => {
    await withStore(factory, async (store) => {
      const { backend } = await store.open()
      if (lacksQuery(t, name, store.capabilities.query && backend.query !== undefined)) return
      const kind = 'corners'
      const stored = cornerData().map((d, i) =>
        record(kind, `c${String(i).padStart(3, '0')}`, 1, {
          data: d,
          labels: LABEL_SETS[i % LABEL_SETS.length]!,
        }),
      )
      await backend.write({
        id: nextBatchId(),
        commits: [commit(1, stored)],
        kinds: [{ kind, indexes: INDEXED }],
        sessions: { put: [], delete: [] },
      })
      const selectors: Selector[] = LABEL_TERMS.map((labels) => ({ labels }))
      for (const path of PATHS) {
        for (const op of ['=', '!=']) {
          for (const v of VALUES) selectors.push({ fields: `${path}${op}${escape(v)}` })
        }
      }
      for (const s of selectors) {
        const got = await allPages(backend, kind, s, 1000)
        const test = matcher(s)
        assert.deepEqual(
          got.filter(test).map((r) => r.id),
          stored.filter(test).map((r) => r.id),
          `selector ${JSON.stringify(s)}`,
        )
      }
    })
  })

  it('explains a query on a declared field with an index', async (t) => {
    await withStore(factory, async (store) => {
      const { backend } = await store.open()
      if (lacksQuery(t, name, store.capabilities.query && backend.explainQuery !== undefined))
        return
      if (backend.explainQuery === undefined) return // (narrowing only: lacksQuery returned)
      const many = Array.from({ length: 2000 }, (_, i) =>
        record('big', `b${i}`, 1, { data: { spec: { pool: `p${i}` } } }),
      )
      await backend.write({
        id: nextBatchId(),
        commits: [commit(1, many)],
        kinds: [{ kind: 'big', indexes: ['spec.pool'] }],
        sessions: { put: [], delete: [] },
      })
      const plan = await backend.explainQuery('big', { fields: 'spec.pool=p7' })
      assert.notEqual(plan.index, null, plan.detail)
      assert.ok(plan.detail.length > 0)
      const found = await backend.query!('big', { fields: 'spec.pool=p7' }, { limit: 10 })
      assert.deepEqual(
        found.map((r) => r.id),
        ['b7'],
      )
    })
  })
}
