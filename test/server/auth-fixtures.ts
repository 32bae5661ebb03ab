import type { AuthOptions } from '../../src/server/index.js'

// The token set both auth matrices (HTTP and WebSocket) run against.
export const ADMIN = 'admin-token-0123456789'
export const READER = 'reader-token-0123456789'
export const API_WRITER = 'api-writer-token-012345'
export const KV_WRITER = 'kv-writer-token-0123456'

export const AUTH: AuthOptions = {
  tokens: [
    { token: ADMIN, name: 'admin', rights: [{ kinds: '*', rights: ['admin'] }] },
    { token: READER, name: 'reader', rights: [{ kinds: '*', rights: ['read'] }] },
    {
      token: API_WRITER,
      name: 'api-writer',
      rights: [
        { kinds: 'api.*', rights: ['read', 'write'] },
        { kinds: '$group.member', rights: ['write'] },
      ],
    },
    { token: KV_WRITER, rights: [{ kinds: '$kv.config', rights: ['read', 'write'] }] },
  ],
}

export const bearer = (token: string): Record<string, string> => ({
  authorization: `Bearer ${token}`,
})
