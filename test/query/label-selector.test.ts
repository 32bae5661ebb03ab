import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidSelector } from '../../src/errors/index.js'
import { parseLabelSelector } from '../../src/query/index.js'
import type { LabelOperator } from '../../src/query/index.js'
import { assertInvalidAt } from './helpers.js'

type Req = [key: string, op: LabelOperator, values: string[]]

function reqs(input: string | Record<string, string>): Req[] {
  return parseLabelSelector(input).requirements.map((r) => [r.key, r.op, [...r.values]])
}

describe('parseLabelSelector: valid input', () => {
  // [input, requirements (sorted by key), canonical text]
  const cases: [string, Req[], string][] = [
    ['', [], ''],
    ['   ', [], ''],
    [
      'x=a,y=b,z=c',
      [
        ['x', '=', ['a']],
        ['y', '=', ['b']],
        ['z', '=', ['c']],
      ],
      'x=a,y=b,z=c',
    ],
    [
      'x!=a,y=b',
      [
        ['x', '!=', ['a']],
        ['y', '=', ['b']],
      ],
      'x!=a,y=b',
    ],
    ['x=', [['x', '=', ['']]], 'x='],
    ['x= ', [['x', '=', ['']]], 'x='],
    [
      'x=,z= ',
      [
        ['x', '=', ['']],
        ['z', '=', ['']],
      ],
      'x=,z=',
    ],
    [
      'x= ,z= ',
      [
        ['x', '=', ['']],
        ['z', '=', ['']],
      ],
      'x=,z=',
    ],
    ['x!=', [['x', '!=', ['']]], 'x!='],
    ['x==a', [['x', '=', ['a']]], 'x=a'],
    ['!x', [['x', '!exists', []]], '!x'],
    ['! x', [['x', '!exists', []]], '!x'],
    ['x>1', [['x', 'gt', ['1']]], 'x>1'],
    [
      'x>1,z<5',
      [
        ['x', 'gt', ['1']],
        ['z', 'lt', ['5']],
      ],
      'x>1,z<5',
    ],
    ['x > 007', [['x', 'gt', ['007']]], 'x>007'],
    ['\rx', [['x', 'exists', []]], 'x'],
    ['a ', [['a', 'exists', []]], 'a'],
    [
      'this-is-a-dns.domain.com/key-with-dash',
      [['this-is-a-dns.domain.com/key-with-dash', 'exists', []]],
      'this-is-a-dns.domain.com/key-with-dash',
    ],
    [
      'this-is-another-dns.domain.com/key-with-dash in (so,what)',
      [['this-is-another-dns.domain.com/key-with-dash', 'in', ['so', 'what']]],
      'this-is-another-dns.domain.com/key-with-dash in (so,what)',
    ],
    [
      '0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)',
      [['0.1.2.domain/99', 'notin', ['10.10.100.1', 'tick.tack.clock']]],
      '0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)',
    ],
    ['foo  in\t (abc)', [['foo', 'in', ['abc']]], 'foo in (abc)'],
    ['x notin\n (abc)', [['x', 'notin', ['abc']]], 'x notin (abc)'],
    ['x  notin\t\t(abc,def)', [['x', 'notin', ['abc', 'def']]], 'x notin (abc,def)'],
    ['x in (def,abc)', [['x', 'in', ['abc', 'def']]], 'x in (abc,def)'],
    ['x in (abc,)', [['x', 'in', ['', 'abc']]], 'x in (,abc)'],
    ['x in (abc,abc)', [['x', 'in', ['abc']]], 'x in (abc)'],
    ['x in (,)', [['x', 'in', ['']]], 'x in (,)'],
    ['x in (a,,)', [['x', 'in', ['', 'a']]], 'x in (,a)'],
    ['x in (a,,,,,,)', [['x', 'in', ['', 'a']]], 'x in (,a)'],
    ['x in (a,,a,,a,,a,,)', [['x', 'in', ['', 'a']]], 'x in (,a)'],
    ['x notin (, a)', [['x', 'notin', ['', 'a']]], 'x notin (,a)'],
    [
      'x notin (abc,,def),bar,z in (,),w',
      [
        ['bar', 'exists', []],
        ['w', 'exists', []],
        ['x', 'notin', ['', 'abc', 'def']],
        ['z', 'in', ['']],
      ],
      'bar,w,x notin (,abc,def),z in (,)',
    ],
    [
      'x,y in (a)',
      [
        ['x', 'exists', []],
        ['y', 'in', ['a']],
      ],
      'x,y in (a)',
    ],
    [
      'x=a,y!=b,z in (h,i,j)',
      [
        ['x', '=', ['a']],
        ['y', '!=', ['b']],
        ['z', 'in', ['h', 'i', 'j']],
      ],
      'x=a,y!=b,z in (h,i,j)',
    ],
    [
      'a in (x,y,notin, z,in)',
      [['a', 'in', ['in', 'notin', 'x', 'y', 'z']]],
      'a in (in,notin,x,y,z)',
    ],
    ['in in (in)', [['in', 'in', ['in']]], 'in in (in)'],
    ['notin=in', [['notin', '=', ['in']]], 'notin=in'],
    [
      'x=a,a=x',
      [
        ['a', '=', ['x']],
        ['x', '=', ['a']],
      ],
      'a=x,x=a',
    ],
    ['x=a,x=a', [['x', '=', ['a']]], 'x=a'],
    [
      'z!=a,z',
      [
        ['z', 'exists', []],
        ['z', '!=', ['a']],
      ],
      'z,z!=a',
    ],
    [
      'env in (prod,stage),!canary,tier=web,tier notin (db),count>3,version<10,app,app==x,app!=y',
      [
        ['app', 'exists', []],
        ['app', '!=', ['y']],
        ['app', '=', ['x']],
        ['canary', '!exists', []],
        ['count', 'gt', ['3']],
        ['env', 'in', ['prod', 'stage']],
        ['tier', 'notin', ['db']],
        ['tier', '=', ['web']],
        ['version', 'lt', ['10']],
      ],
      'app,app!=y,app=x,!canary,count>3,env in (prod,stage),tier notin (db),tier=web,version<10',
    ],
    ['A_b.c-9=Z_y.x-0', [['A_b.c-9', '=', ['Z_y.x-0']]], 'A_b.c-9=Z_y.x-0'],
  ]
  for (const [input, expected, text] of cases) {
    it(JSON.stringify(input), () => {
      const selector = parseLabelSelector(input)
      assert.deepEqual(reqs(input), expected)
      assert.equal(selector.toString(), text)
      assert.equal(selector.empty, expected.length === 0)
      assert.deepEqual(reqs(text), expected, 'the canonical text parses to the same requirements')
    })
  }

  it('is deterministic whatever the requirement order', () => {
    assert.equal(parseLabelSelector('x=a,a=x').toString(), parseLabelSelector('a=x,x=a').toString())
  })

  it('accepts the object form as an AND of "="', () => {
    assert.deepEqual(reqs({ tier: 'web', env: 'prod', none: '' }), [
      ['env', '=', ['prod']],
      ['none', '=', ['']],
      ['tier', '=', ['web']],
    ])
    assert.equal(parseLabelSelector({ tier: 'web', env: 'prod' }).toString(), 'env=prod,tier=web')
    assert.equal(parseLabelSelector({}).empty, true)
  })
})

describe('parseLabelSelector: invalid input', () => {
  // [input, position of the offending character]
  const cases: [string, number][] = [
    ['x=a||y=b', 3],
    ['x==a==b', 4],
    ['!x=a', 2],
    ['!x in (a)', 3],
    ['x<a', 2],
    ['x,,y', 2],
    [',x,y', 0],
    ['x nott in (y)', 2],
    ['a in (xyz),', 11],
    ['a in (xyz)b notin ()', 10],
    ['a in (xyz abc)', 10],
    ['a notin(', 8],
    ['a (', 2],
    ['(', 0],
    [')', 0],
    ['x in ()', 6],
    ['x notin ( )', 10],
    ['x in (a', 7],
    ['x in (a,', 8],
    ['x in (', 6],
    ['x in a', 5],
    ['x in', 4],
    ['x in (a=b)', 7],
    ['x in (=)', 6],
    ['x in (a))', 8],
    ['x in ((a)', 6],
    ['x>', 2],
    ['x>,y', 2],
    ['x>-1', 2],
    ['x>1.5', 3],
    ['x< 12a', 5],
    ['x>99999999999999999999', 2],
    ['x>(1)', 2],
    ['x~y', 1],
    ['-x', 0],
    ['x-', 1],
    ['_x', 0],
    ['a/b/c', 3],
    ['/a', 0],
    ['a/', 2],
    ['A.com/x', 0],
    ['a_b.com/x', 1],
    ['a..b/x', 2],
    ['.a/x', 0],
    ['a-.b/x', 1],
    ['a./x', 1],
    ['example.com/-x', 12],
    [`${'a'.repeat(64)}`, 63],
    [`${'a'.repeat(254)}/x`, 253],
    ['x=a b', 4],
    ['x=-a', 2],
    ['x=a-', 3],
    [`x=${'a'.repeat(64)}`, 65],
    ['x in (a,-b)', 8],
    ['x=(a)', 2],
    ['x=!', 2],
    ['!', 1],
    ['!!x', 1],
    ['!=a', 0],
    ['=a', 0],
    ['x y', 2],
    ['x=a,', 4],
    ['x\u00e9=1', 1],
  ]
  for (const [input, position] of cases) {
    it(`${JSON.stringify(input)} at ${position}`, () => {
      assertInvalidAt(() => parseLabelSelector(input), position, input)
    })
  }

  it('quotes the input and puts a caret under the offending character', () => {
    try {
      parseLabelSelector('x in (a')
      assert.fail('expected an error')
    } catch (err) {
      assert.ok(err instanceof InvalidSelector)
      assert.equal(err.input, 'x in (a')
      assert.equal(
        err.message,
        `invalid label selector "x in (a": unclosed '(' at position 7\n  x in (a\n         ^`,
      )
    }
  })

  it('keeps the caret in its column when the input has tabs or line breaks', () => {
    try {
      parseLabelSelector('x\tin\n(a b)')
      assert.fail('expected an error')
    } catch (err) {
      assert.ok(err instanceof InvalidSelector)
      assert.equal(err.position, 8)
      assert.ok(err.message.endsWith('\n  x in (a b)\n          ^'), err.message)
    }
  })

  it('checks keys and values of the object form, pointing into its k=v text', () => {
    assertInvalidAt(() => parseLabelSelector({ 'bad key': 'x' }), 3, 'key')
    assertInvalidAt(() => parseLabelSelector({ ok: 'x', also: 'bad value' }), 13, 'value')
    assertInvalidAt(() => parseLabelSelector({ '': 'x' }), 0, 'empty key')
    assertInvalidAt(
      () => parseLabelSelector({ ok: 1 } as unknown as Record<string, string>),
      undefined,
      'number',
    )
    assertInvalidAt(() => parseLabelSelector(null as unknown as string), undefined, 'null')
  })
})

describe('LabelSelector.matches', () => {
  // [selector, labels, expected] — the first block is apimachinery's TestSelectorMatches.
  const cases: [string, Record<string, string>, boolean][] = [
    ['', { x: 'y' }, true],
    ['x=y', { x: 'y' }, true],
    ['x=y,z=w', { x: 'y', z: 'w' }, true],
    ['x!=y,z!=w', { x: 'z', z: 'a' }, true],
    ['notin=in', { notin: 'in' }, true],
    ['x', { x: 'z' }, true],
    ['!x', { y: 'z' }, true],
    ['x>1', { x: '2' }, true],
    ['x<1', { x: '0' }, true],
    ['x=z', {}, false],
    ['x=y', { x: 'z' }, false],
    ['x=y,z=w', { x: 'w', z: 'w' }, false],
    ['x!=y,z!=w', { x: 'z', z: 'w' }, false],
    ['x', { y: 'z' }, false],
    ['!x', { x: 'z' }, false],
    ['x>1', { x: '0' }, false],
    ['x<1', { x: '2' }, false],
    ['foo=bar,baz=blah', { foo: 'bar', baz: 'blah' }, true],
    ['foo=bar,foobar=bar,baz=blah', { foo: 'bar', baz: 'blah' }, false],
    // apimachinery's TestRequirementSelectorMatching
    ['x in (foo),y notin (alpha)', { x: 'foo', y: 'baz' }, true],
    ['x in (foo),y in (alpha)', { x: 'foo', y: 'baz' }, false],
    ['x notin (,),y', { y: '' }, true],
    ['!x,y', { y: '' }, true],
    ['x notin (,),!y', { y: '' }, false],
    ['x in (,)', { y: 'baz' }, false],
    ['z>1', { z: '2' }, true],
    ['z>1', { z: 'v2' }, false],
    // absent keys
    ['x!=a', {}, true],
    ['x!=', {}, true],
    ['x notin (a,b)', {}, true],
    ['x in (a,b)', {}, false],
    ['x=', {}, false],
    ['x=', { x: '' }, true],
    ['x>1', {}, false],
    ['x<1', {}, false],
    // sets
    ['x in (a,b)', { x: 'b' }, true],
    ['x in (a,b)', { x: 'c' }, false],
    ['x notin (a,b)', { x: 'b' }, false],
    ['x notin (a,b)', { x: 'c' }, true],
    ['x in (,a)', { x: '' }, true],
    // integers, parsed as Go's strconv.ParseInt does
    ['x>1', { x: '+5' }, true],
    ['x<1', { x: '-5' }, true],
    ['x>9', { x: '10' }, true],
    ['x<10', { x: '9' }, true],
    ['x>5', { x: '5' }, false],
    ['x<5', { x: '5' }, false],
    ['x>1', { x: ' 5' }, false],
    ['x>1', { x: '1.5' }, false],
    ['x>1', { x: '0x10' }, false],
    ['x<9223372036854775807', { x: '9223372036854775806' }, true],
    ['x<9223372036854775807', { x: '9223372036854775808' }, false],
    ['x>0', { x: '-9223372036854775809' }, false],
    ['x<0', { x: '-9223372036854775808' }, true],
    // keys are own properties, not the prototype's
    ['constructor', {}, false],
    ['!constructor', {}, true],
    ['constructor!=x', {}, true],
    ['toString in (a)', {}, false],
    ['example.com/app=web', { 'example.com/app': 'web' }, true],
    ['example.com/app=web', { app: 'web' }, false],
  ]
  for (const [selector, labels, expected] of cases) {
    it(`${JSON.stringify(selector)} on ${JSON.stringify(labels)} → ${expected}`, () => {
      assert.equal(parseLabelSelector(selector).matches(labels), expected)
    })
  }

  it('matches an object-form selector as an AND of "="', () => {
    const selector = parseLabelSelector({ foo: 'bar', baz: 'blah' })
    assert.equal(selector.matches({ foo: 'bar', baz: 'blah', other: 'x' }), true)
    assert.equal(selector.matches({ foo: 'bar' }), false)
    assert.equal(parseLabelSelector({}).matches({ a: 'b' }), true)
  })

  it('matches labels with a null prototype', () => {
    const labels = Object.assign(Object.create(null) as Record<string, string>, { x: 'y' })
    assert.equal(parseLabelSelector('x=y,!z').matches(labels), true)
  })
})
