import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidSelector } from '../../src/errors/index.js'
import { compileGlob, isGlob } from '../../src/query/index.js'
import { assertInvalidAt } from './helpers.js'

describe('compileGlob', () => {
  const shapes: [pattern: string, prefix: string, exact: boolean][] = [
    ['abc', 'abc', true],
    ['a\\*b', 'a*b', true],
    ['a\\?b', 'a?b', true],
    ['a\\\\b', 'a\\b', true],
    ['\\x', 'x', true],
    ['worker-*', 'worker-', false],
    ['worker-?', 'worker-', false],
    ['w\\*-*', 'w*-', false],
    ['*', '', false],
    ['?', '', false],
    ['*abc', '', false],
    ['', '', true],
  ]
  for (const [pattern, prefix, exact] of shapes) {
    it(`compiles ${JSON.stringify(pattern)} to prefix ${JSON.stringify(prefix)}, exact ${exact}`, () => {
      const glob = compileGlob(pattern)
      assert.equal(glob.source, pattern)
      assert.equal(glob.prefix, prefix)
      assert.equal(glob.exact, exact)
    })
  }

  const cases: [pattern: string, matching: string[], notMatching: string[]][] = [
    ['abc', ['abc'], ['ab', 'abcd', 'xabc', '']],
    ['*', ['', 'a', 'anything at all', '*'], []],
    ['**', ['', 'ab'], []],
    ['?', ['a', '*', '?'], ['', 'ab']],
    ['??', ['ab', '😀'], ['a', 'abc']],
    ['worker-*', ['worker-', 'worker-1', 'worker-a-b'], ['worker', 'Worker-1', 'xworker-1']],
    ['*-1', ['-1', 'a-1', 'a-1-1'], ['a-12', 'a-']],
    ['a*b*c', ['abc', 'aXbYc', 'abbbc', 'acbc'], ['acb', 'ab', 'bac']],
    ['a*b?c*d', ['abxcd', 'aXXbYcZZd', 'ab?cd'], ['abcd', 'abxc']],
    ['ab*ba', ['abba', 'ab-ba', 'abbba'], ['aba', 'ab', 'ba']],
    ['*a?a*', ['aba', 'xxaxayy'], ['aa', 'ab']],
    ['a\\*', ['a*'], ['a', 'ab']],
    ['a\\**', ['a*', 'a*b'], ['a', 'ab']],
    ['\\?*', ['?', '?x'], ['x', '']],
    ['a\\\\*', ['a\\', 'a\\b'], ['a', 'ab']],
    ['x*?', ['xa', 'xab'], ['x']],
    ['x?*', ['xa', 'xab'], ['x']],
    ['*?*?*', ['ab', 'abc'], ['a', '']],
    ['w-00?', ['w-000', 'w-009'], ['w-0010', 'w-00']],
    ['*9', ['w-0009', '9'], ['w-0090']],
    ['héllo-*', ['héllo-wörld'], ['hello-world']],
  ]
  for (const [pattern, matching, notMatching] of cases) {
    it(`matches ${JSON.stringify(pattern)}`, () => {
      const glob = compileGlob(pattern)
      for (const id of matching) assert.equal(glob.test(id), true, `${pattern} should match ${id}`)
      for (const id of notMatching)
        assert.equal(glob.test(id), false, `${pattern} should not match ${id}`)
    })
  }

  it('treats "?" as one UTF-16 code unit', () => {
    assert.equal(compileGlob('?').test('😀'), false)
    assert.equal(compileGlob('??').test('😀'), true)
    assert.equal(compileGlob('a?').test('aé'), true)
  })

  it('does not backtrack exponentially on many stars', () => {
    const glob = compileGlob(`${'a*'.repeat(40)}b`)
    assert.equal(glob.test('a'.repeat(5000)), false)
    assert.equal(glob.test(`${'a'.repeat(5000)}b`), true)
    const wild = compileGlob(`${'*?'.repeat(40)}b`)
    assert.equal(wild.test('a'.repeat(5000)), false)
  })

  it('checks the prefix before anything else', () => {
    const glob = compileGlob('api.route/*')
    assert.equal(glob.test('api.route/health'), true)
    assert.equal(glob.test('api.routes/health'), false)
  })

  it('rejects a trailing lone backslash, pointing at it', () => {
    assertInvalidAt(() => compileGlob('\\'), 0, '\\')
    assertInvalidAt(() => compileGlob('ab\\'), 2, 'ab\\')
    assertInvalidAt(() => compileGlob('a\\\\\\'), 3, 'a\\\\\\')
    assertInvalidAt(() => compileGlob('*\\'), 1, '*\\')
  })

  it('says what is wrong and where in the message', () => {
    try {
      compileGlob('ab\\')
      assert.fail('expected an error')
    } catch (err) {
      assert.ok(err instanceof InvalidSelector)
      assert.equal(err.code, 'InvalidSelector')
      assert.equal(err.input, 'ab\\')
      assert.match(err.message, /^invalid glob "ab\\\\": a trailing '\\' escapes nothing/)
      assert.ok(err.message.endsWith('\n  ab\\\n    ^'), err.message)
    }
  })
})

describe('isGlob', () => {
  const cases: [string, boolean][] = [
    ['plain', false],
    ['', false],
    ['a*', true],
    ['a?', true],
    ['*', true],
    ['a\\*', false],
    ['a\\?', false],
    ['a\\\\*', true],
    ['a\\', false],
  ]
  for (const [pattern, expected] of cases) {
    it(`${JSON.stringify(pattern)} → ${expected}`, () => assert.equal(isGlob(pattern), expected))
  }
})
