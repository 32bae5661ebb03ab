// Issue 10 item 2 (edge half): any value the engine accepts is one every backend stores and
// gives back unchanged. Values come from fast-check — unicode edge cases (astral characters,
// U+FFFF, U+2028, lone surrogates and U+0000, which must be refused), numbers (huge, tiny,
// negative zero, fractions) — as record ids and data; each run writes them, closes the
// dataspace, reopens it from the backend and compares. The one documented change: -0 reads
// back as 0 (JSON has no negative zero; docs/semantics.md).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import fc from 'fast-check'
import { postgresBackend } from '../../src/backends/postgres/index.js'
import { sqliteBackend } from '../../src/backends/sqlite/index.js'
import type { Backend } from '../../src/backends/index.js'
import { DataspaceError, openDataspace } from '../../src/index.js'
import { dropSchema, POSTGRES_URL, postgresSkip } from '../postgres-env.js'

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
const RUNS = Number(process.env.ROUNDTRIP_RUNS ?? 12)
console.log(`# value round-trip: FC_SEED=${SEED} ROUNDTRIP_RUNS=${RUNS}`)

const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.constantFrom(
    '',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfff',
    '😀',
    '\ud83d\ude00x',
    '\uffff',
    '\ufffe',
    '\u2028\u2029',
    '"\\/\b\f\n\r\t\u001f',
    '__proto__',
    'constructor',
    '𝌆'.repeat(3),
  ),
)
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    -0,
    0.1,
    1e308,
    -1e308,
    Number.MAX_VALUE,
    5e-324,
    -5e-324,
    2 ** 53 - 1,
    -(2 ** 53),
    1e21,
    123456.789e-10,
  ),
)
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    fc.constant(null),
    fc.boolean(),
    number,
    text,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(text, tie('value'), { maxKeys: 4 }),
  ),
}))
const entries = fc.array(fc.record({ id: text, data: value }), { minLength: 1, maxLength: 12 })

/** What a durable store gives back: -0 becomes 0 (JSON has none); everything else unchanged. */
function stored(input: unknown): unknown {
  if (Object.is(input, -0)) return 0
  if (Array.isArray(input)) return input.map(stored)
  if (input !== null && typeof input === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(input)) {
      Object.defineProperty(out, key, { value: stored(child), enumerable: true, writable: true })
    }
    return out
  }
  return input
}

let scratch: string | undefined
let n = 0
after(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
})

const BACKENDS: readonly {
  name: string
  skip: string | false
  make(): { open(): Backend | 'memory'; cleanup(): Promise<void> }
}[] = [
  {
    name: 'memory',
    skip: false,
    make: () => ({ open: () => 'memory', cleanup: async () => {} }),
  },
  {
    name: 'sqlite',
    skip: false,
    make() {
      scratch ??= mkdtempSync(join(tmpdir(), 'ds-roundtrip-'))
      const path = join(scratch, `${process.pid}-${++n}.db`)
      return { open: () => sqliteBackend({ path }), cleanup: async () => {} }
    },
  },
  {
    name: 'postgres',
    skip: postgresSkip,
    make() {
      const schema = `ds_roundtrip_${process.pid}_${++n}`
      return {
        open: () => postgresBackend({ url: POSTGRES_URL, schema }),
        cleanup: () => dropSchema(schema),
      }
    },
  },
]

for (const backend of BACKENDS) {
  describe(`accepted values round-trip [${backend.name}]`, { skip: backend.skip }, () => {
    it('every accepted id and value reads back unchanged after a reopen; the rest is refused', async () => {
      await fc.assert(
        fc.asyncProperty(entries, async (batch) => {
          const store = backend.make()
          try {
            const ds = await openDataspace({ backend: store.open() })
            const accepted = new Map<string, unknown>()
            const owner = ds.process('writer')
            for (const { id, data } of batch) {
              try {
                await owner.assert('rt.value', id, data, { owner: null })
                accepted.set(id, data)
              } catch (error) {
                // Refused values must be refused as bad input, never fail in a backend.
                assert.ok(error instanceof DataspaceError, String(error))
                assert.ok(['InvalidArgument', 'TooLarge'].includes(error.code), error.message)
              }
            }
            const memory = backend.name === 'memory'
            const reopened = memory
              ? ds
              : await (await ds.close(), openDataspace({ backend: store.open() }))
            try {
              for (const [id, data] of accepted) {
                const record = await reopened.get('rt.value', id)
                assert.ok(record !== undefined, `record ${JSON.stringify(id)} is missing`)
                assert.deepStrictEqual(record.data, memory ? data : stored(data))
              }
            } finally {
              await reopened.close()
            }
          } finally {
            await store.cleanup()
          }
        }),
        { seed: SEED, numRuns: RUNS },
      )
    })
  })
}
