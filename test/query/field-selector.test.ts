import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidSelector } from '../../src/errors/index.js'
import { fieldValues, parseFieldSelector } from '../../src/query/index.js'
import type { FieldOperator } from '../../src/query/index.js'
import { assertInvalidAt } from './helpers.js'

type Term = [path: string, op: FieldOperator, value: string]

function terms(input: string | Record<string, string>): Term[] {
  return parseFieldSelector(input).requirements.map((r) => [r.path, r.op, r.value])
}

describe('parseFieldSelector: valid input', () => {
  // [input, requirements (sorted), canonical text]
  const cases: [string, Term[], string][] = [
    ['', [], ''],
    [
      'x=a,y=b,z=c',
      [
        ['x', '=', 'a'],
        ['y', '=', 'b'],
        ['z', '=', 'c'],
      ],
      'x=a,y=b,z=c',
    ],
    [
      'x!=a,y=b',
      [
        ['x', '!=', 'a'],
        ['y', '=', 'b'],
      ],
      'x!=a,y=b',
    ],
    ['x==a', [['x', '=', 'a']], 'x=a'],
    ['x=a||y\\=b', [['x', '=', 'a||y=b']], 'x=a||y\\=b'],
    ['x=a\\=\\=b', [['x', '=', 'a==b']], 'x=a\\=\\=b'],
    ['actor_id=', [['actor_id', '=', '']], 'actor_id='],
    ['actor_id!=', [['actor_id', '!=', '']], 'actor_id!='],
    ['spec.pool=cpu', [['spec.pool', '=', 'cpu']], 'spec.pool=cpu'],
    [' pool = cpu ', [['pool', '=', ' cpu ']], 'pool= cpu '],
    [
      'a=1, b=2',
      [
        ['a', '=', '1'],
        ['b', '=', '2'],
      ],
      'a=1,b=2',
    ],
    [
      'a=1,,b=2,',
      [
        ['a', '=', '1'],
        ['b', '=', '2'],
      ],
      'a=1,b=2',
    ],
    [',a=1', [['a', '=', '1']], 'a=1'],
    [' , ', [], ''],
    [
      'k=\\,,k2=v2',
      [
        ['k', '=', ','],
        ['k2', '=', 'v2'],
      ],
      'k=\\,,k2=v2',
    ],
    [
      'k=\\\\,k2=v2',
      [
        ['k', '=', '\\'],
        ['k2', '=', 'v2'],
      ],
      'k=\\\\,k2=v2',
    ],
    [
      'k=\\\\\\,,k2=v2',
      [
        ['k', '=', '\\,'],
        ['k2', '=', 'v2'],
      ],
      'k=\\\\\\,,k2=v2',
    ],
    ['k=\\!', [['k', '=', '!']], 'k=!'],
    ['k=!', [['k', '=', '!']], 'k=!'],
    [
      '함=수,목=록',
      [
        ['목', '=', '록'],
        ['함', '=', '수'],
      ],
      '목=록,함=수',
    ],
    ['a!b=c', [['a!b', '=', 'c']], 'a\\!b=c'],
    ['a\\!=b', [['a!', '=', 'b']], 'a\\!=b'],
    ['a\\,b\\=c=d', [['a,b=c', '=', 'd']], 'a\\,b\\=c=d'],
    ['notin=in', [['notin', '=', 'in']], 'notin=in'],
    ['x in (a)=1', [['x in (a)', '=', '1']], 'x in (a)=1'],
    [
      'x=a,a=x',
      [
        ['a', '=', 'x'],
        ['x', '=', 'a'],
      ],
      'a=x,x=a',
    ],
    [
      'a=1,a=1,a!=1',
      [
        ['a', '!=', '1'],
        ['a', '=', '1'],
      ],
      'a!=1,a=1',
    ],
  ]
  for (const [input, expected, text] of cases) {
    it(JSON.stringify(input), () => {
      const selector = parseFieldSelector(input)
      assert.deepEqual(terms(input), expected)
      assert.equal(selector.toString(), text)
      assert.equal(selector.empty, expected.length === 0)
      assert.deepEqual(terms(text), expected, 'the canonical text parses to the same requirements')
    })
  }

  it('splits paths into segments', () => {
    const [requirement] = parseFieldSelector('spec.template.pool=cpu').requirements
    assert.deepEqual(requirement?.segments, ['spec', 'template', 'pool'])
    assert.ok(Object.isFrozen(requirement))
  })

  it('is deterministic whatever the term order', () => {
    assert.equal(parseFieldSelector('x=a,a=x').toString(), parseFieldSelector('a=x,x=a').toString())
  })

  it('accepts the object form as an AND of "="', () => {
    assert.deepEqual(terms({ pool: 'cpu', actor_id: '' }), [
      ['actor_id', '=', ''],
      ['pool', '=', 'cpu'],
    ])
    assert.deepEqual(terms({ 'a,b': 'x=y\\' }), [['a,b', '=', 'x=y\\']])
    assert.equal(parseFieldSelector({ 'spec.pool': 'c,d' }).toString(), 'spec.pool=c\\,d')
    assert.equal(parseFieldSelector({}).empty, true)
  })
})

describe('parseFieldSelector: invalid input', () => {
  // [input, position of the offending character]
  const cases: [string, number][] = [
    ['x', 1],
    ['x=a,b', 5],
    ['pool=cpu,bad', 12],
    ['x in (a)', 8],
    ['x=a||y=b', 6],
    ['x==a==b', 4],
    ['a=b=c', 3],
    ['x===a', 3],
    ['=x', 0],
    [' !=x', 1],
    ['a,==x', 1],
    [' ,==x', 2],
    ['a..b=c', 2],
    ['.a=1', 0],
    ['a.=1', 1],
    ['.=1', 0],
    ['a.b..=1', 4],
    [' a..b=1', 3],
    ['\\,..b=1', 3],
    ['k=\\a', 2],
    ['k=\\', 2],
    ['k=v\\', 3],
    ['\\a=1', 0],
    ['a\\', 1],
    ['a=1,b', 5],
  ]
  for (const [input, position] of cases) {
    it(`${JSON.stringify(input)} at ${position}`, () => {
      assertInvalidAt(() => parseFieldSelector(input), position, input)
    })
  }

  it('quotes the input and puts a caret under the offending character', () => {
    try {
      parseFieldSelector('pool=cpu,bad')
      assert.fail('expected an error')
    } catch (err) {
      assert.ok(err instanceof InvalidSelector)
      assert.equal(err.input, 'pool=cpu,bad')
      assert.equal(
        err.message,
        `invalid field selector "pool=cpu,bad": expected '=', '==' or '!=' after "bad" at position 12\n` +
          '  pool=cpu,bad\n' +
          '              ^',
      )
    }
  })

  it('checks the keys of the object form the same way', () => {
    assertInvalidAt(() => parseFieldSelector({ '': 'x' }), 0, 'empty key')
    assertInvalidAt(() => parseFieldSelector({ 'a..b': 'x' }), 2, 'empty segment')
    assertInvalidAt(() => parseFieldSelector({ ok: 'x', 'a.': 'y' }), 6, 'second key')
    assertInvalidAt(
      () => parseFieldSelector({ pool: 1 } as unknown as Record<string, string>),
      undefined,
      'number',
    )
    assertInvalidAt(() => parseFieldSelector(42 as unknown as string), undefined, 'not a selector')
  })
})

describe('FieldSelector.matches', () => {
  const data = {
    x: 'y',
    z: 'w',
    foo: 'bar',
    baz: 'blah',
    complex: '=value\\,\\',
    count: 3,
    free: false,
    big: 10n,
    none: null,
    spec: { pool: 'cpu', template: { image: 'a:1' } },
    tags: ['a', 'b', 3, null, { nested: true }],
    empty: [],
    objects: [{ a: 1 }],
    items: [{ name: 'n' }],
  }
  // [selector, matches `data`]
  const cases: [string, boolean][] = [
    ['', true],
    ['x=y', true],
    ['x=y,z=w', true],
    ['x!=a,z!=b', true],
    ['x=z', false],
    ['x=y,z=y', false],
    ['x!=y', false],
    ['foo=bar,baz=blah', true],
    ['complex=\\=value\\\\\\,\\\\', true],
    ['foo=bar,foobar=bar,baz=blah', false],
    ['foobar=', true],
    ['foobar!=', false],
    ['foobar!=x', true],
    ['count=3', true],
    ['count!=3', false],
    ['count=03', false],
    ['free=false', true],
    ['big=10', true],
    ['none=', true],
    ['none!=', false],
    ['spec.pool=cpu', true],
    ['spec.pool!=gpu', true],
    ['spec.template.image=a:1', true],
    ['spec.missing=', true],
    ['spec.pool.deeper=', true],
    ['spec=cpu', false],
    ['spec!=cpu', true],
    ['spec=', false],
    ['tags=a', true],
    ['tags=b,tags=3', true],
    ['tags=', true],
    ['tags!=a', false],
    ['tags!=c', true],
    ['tags=c', false],
    ['empty=', true],
    ['empty!=', false],
    ['empty=a', false],
    ['objects=', false],
    ['objects!=', true],
    ['items.name=n', false],
    ['items.name=', true],
    ['constructor=', true],
    ['toString!=', false],
    ['x.length=', true],
  ]
  for (const [selector, expected] of cases) {
    it(`${JSON.stringify(selector)} → ${expected}`, () => {
      assert.equal(parseFieldSelector(selector).matches(data), expected)
    })
  }

  it('treats non-object data as having no fields', () => {
    assert.equal(parseFieldSelector('a=').matches(undefined), true)
    assert.equal(parseFieldSelector('a=').matches('text'), true)
    assert.equal(parseFieldSelector('a=x').matches(null), false)
  })
})

describe('fieldValues', () => {
  const data = {
    s: 'text',
    n: 1.5,
    zero: -0,
    b: true,
    nil: null,
    list: ['x', 1, false, null, ['nested'], { o: 1 }, 'x'],
    empty: [],
    one: ['only'],
    oneObject: [{}],
    obj: { inner: { leaf: 'v' } },
  }
  const cases: [path: string, values: string[]][] = [
    ['s', ['text']],
    ['n', ['1.5']],
    ['zero', ['0']],
    ['b', ['true']],
    ['nil', ['']],
    ['missing', ['']],
    ['list', ['x', '1', 'false', '']],
    ['empty', ['']],
    ['one', ['only']],
    ['oneObject', []],
    ['obj', []],
    ['obj.inner.leaf', ['v']],
    ['obj.inner.leaf.more', ['']],
    ['s.length', ['']],
    ['list.0', ['']],
    ['hasOwnProperty', ['']],
  ]
  for (const [path, values] of cases) {
    it(`${path} → ${JSON.stringify(values)}`, () => {
      assert.deepEqual(fieldValues(data, path.split('.')), values)
    })
  }

  it('returns the whole value for an empty path', () => {
    assert.deepEqual(fieldValues('x', []), ['x'])
    assert.deepEqual(fieldValues(undefined, []), [''])
  })
})
