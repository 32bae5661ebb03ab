import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Router } from '../../src/server/router.js'

describe('router', () => {
  const router = new Router<string>()
    .add('GET', '/v1/kv/:bucket/*key', 'key')
    .add('GET', '/v1/kv/:bucket/watch', 'watch')
    .add('GET', '/v1/kv/:bucket', 'scan')
    .add('PUT', '/v1/kv/:bucket/*key', 'put')

  it('prefers literal segments over parameters, whatever the order added', () => {
    assert.deepEqual(router.match('GET', '/v1/kv/b/watch'), {
      type: 'found',
      handler: 'watch',
      params: { bucket: 'b' },
    })
    assert.deepEqual(router.match('GET', '/v1/kv/b'), {
      type: 'found',
      handler: 'scan',
      params: { bucket: 'b' },
    })
  })

  it('takes the rest of the path, decoding each segment', () => {
    assert.deepEqual(router.match('GET', '/v1/kv/b/a/x%20y/c%2Fd'), {
      type: 'found',
      handler: 'key',
      params: { bucket: 'b', key: 'a/x y/c/d' },
    })
  })

  it('reports the allowed methods, or nothing found', () => {
    assert.deepEqual(router.match('DELETE', '/v1/kv/b/k'), {
      type: 'method-not-allowed',
      allow: ['GET', 'PUT'],
    })
    assert.deepEqual(router.match('GET', '/v1/other'), { type: 'not-found' })
    assert.throws(() => router.match('GET', '/v1/kv/%E0%A4%A'), { code: 'InvalidArgument' })
  })
})
