/**
 * Queries over records: id globs, Kubernetes-style field selectors over data paths and label
 * selectors over labels. Everything here parses once into a value whose `test` / `matches` does
 * no parsing, and does no I/O.
 *
 * @example
 * import { compileGlob, parseFieldSelector, parseLabelSelector } from './query/index.js'
 * const id = compileGlob('worker-*')
 * const fields = parseFieldSelector('spec.pool=cpu')
 * const labels = parseLabelSelector('tier in (web,api),!canary')
 */
export { compileGlob, escapeGlob, isGlob, nextPrefix } from './glob.js'
export type { CompiledGlob } from './glob.js'
export { parseFieldSelector } from './field-selector.js'
export type { FieldOperator, FieldRequirement, FieldSelector } from './field-selector.js'
export { fieldHasValue, fieldValues } from './field-values.js'
export { parseLabelSelector } from './label-selector.js'
export type { LabelSelector } from './label-selector.js'
export type { LabelOperator, LabelRequirement } from './label-requirement.js'
export { validateLabelKey, validateLabelValue, validateLabels } from './validate-labels.js'
