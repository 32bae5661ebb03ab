/**
 * A name registry with fence tokens, as records of kind `$name` owned by their holders.
 * @module
 */
export { NameRegistry } from './name-registry.js'
export { NAME_KIND } from '../model/names.js'
export type { NameBinding, NameRegistryApi } from '../model/names.js'
