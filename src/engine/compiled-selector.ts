import { InvalidArgument, InvalidSelector } from '../errors/index.js'
import { compileGlob, parseFieldSelector, parseLabelSelector } from '../query/index.js'
import type { CompiledGlob, FieldSelector, LabelSelector } from '../query/index.js'
import type { DataspaceRecord, Selector } from '../model/types.js'
import { checkId, checkText, MAX_ID_LENGTH } from '../model/validate.js'

/**
 * Longest id selector accepted. Ids are at most MAX_ID_LENGTH, and a glob that names one
 * literally, escaped, is at most twice that; the facades' prefix globs (a group's JSON-quoted
 * scope and name, escaped) stay within four times. The bound keeps a client's selector, which
 * a watch keeps and stores in its `$watch` record, from being as large as a whole frame.
 */
const MAX_ID_SELECTOR_LENGTH = 8 * MAX_ID_LENGTH

/** A `Selector` parsed once: `matches` runs without re-parsing. */
export interface CompiledSelector {
  /** `undefined` selects every id. */
  readonly id: CompiledGlob | undefined
  readonly fields: FieldSelector | undefined
  readonly labels: LabelSelector | undefined
  readonly owner: string | undefined
  /** A canonical text of the whole selector: continue tokens are bound to it. */
  readonly key: string
  /** True when only the id (or nothing) is selected on, so a missing record can still match. */
  readonly idOnly: boolean
  matches(record: DataspaceRecord): boolean
}

/**
 * Parses and checks a selector. `closedFields` is the kind's declared field list, if it has one:
 * naming any other path is an error, never a silently empty result.
 */
export function compileSelector(
  selector: Selector,
  closedFields?: ReadonlySet<string>,
): CompiledSelector {
  const id = compileIdSelector(selector.id)
  const fields = selector.fields === undefined ? undefined : parseFieldSelector(selector.fields)
  const labels = selector.labels === undefined ? undefined : parseLabelSelector(selector.labels)
  const owner = selector.owner
  if (owner !== undefined && (typeof owner !== 'string' || owner.length === 0)) {
    throw new InvalidArgument('owner must be a non-empty pid string')
  }
  // Selectors of non-resident kinds go to the backend's query: the value rule's strings hold.
  if (owner !== undefined) checkText('owner', owner)
  if (fields !== undefined) checkText('field selector', fields.toString())
  if (labels !== undefined) checkText('label selector', labels.toString())
  if (fields !== undefined && closedFields !== undefined) {
    for (const requirement of fields.requirements) {
      if (!closedFields.has(requirement.path)) {
        const text = fields.toString()
        throw new InvalidSelector(
          `field selector "${text}" names "${requirement.path}", which this kind does not declare (declared: ${[...closedFields].join(', ') || 'none'})`,
          text,
          text.indexOf(requirement.path),
        )
      }
    }
  }
  const activeFields = fields !== undefined && !fields.empty ? fields : undefined
  const activeLabels = labels !== undefined && !labels.empty ? labels : undefined
  const idTest = id === undefined ? undefined : id
  const key = JSON.stringify([
    id?.source ?? null,
    activeFields?.toString() ?? null,
    activeLabels?.toString() ?? null,
    owner ?? null,
  ])
  return {
    id,
    fields: activeFields,
    labels: activeLabels,
    owner,
    key,
    idOnly: activeFields === undefined && activeLabels === undefined && owner === undefined,
    matches(record) {
      if (idTest !== undefined && !idTest.test(record.id)) return false
      if (owner !== undefined && record.owner !== owner) return false
      if (activeFields !== undefined && !activeFields.matches(record.data)) return false
      if (activeLabels !== undefined && !activeLabels.matches(record.labels)) return false
      return true
    },
  }
}

function compileIdSelector(id: string | number | undefined): CompiledGlob | undefined {
  if (id === undefined) return undefined
  const pattern = typeof id === 'number' ? checkId(id) : id
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new InvalidArgument('id selector must be a non-empty string or a number')
  }
  if (pattern.length > MAX_ID_SELECTOR_LENGTH) {
    throw new InvalidArgument(
      `id selector is ${pattern.length} characters long; the limit is ${MAX_ID_SELECTOR_LENGTH}`,
    )
  }
  const glob = compileGlob(checkText('id selector', pattern))
  // `*` selects everything: treat it as no id selector so the planner does not think it is narrowed.
  return glob.prefix === '' && glob.source === '*' ? undefined : glob
}
