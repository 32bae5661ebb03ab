/**
 * A name registry with fence tokens, as records of kind `$name` owned by their holders.
 * @module
 */
export { NAME_KIND, NameRegistry } from './name-registry.js'
export type { NameBinding, NameRegistryApi } from './name-registry.js'
