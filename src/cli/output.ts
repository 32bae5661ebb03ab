/** Where commands write: injectable so tests and embedders can capture output. */
export interface CliIo {
  readonly stdout: (line: string) => void
  readonly stderr: (line: string) => void
  readonly env: Readonly<Record<string, string | undefined>>
}

/** `table` for people (the default), `json` for scripts. */
export type OutputMode = 'table' | 'json'

/** A column: its header and how to read a cell from a row. */
export interface Column<T> {
  readonly header: string
  readonly cell: (row: T) => unknown
}

/**
 * Renders rows as an aligned text table: upper-case headers, cells separated by two spaces, the
 * last column never padded. Objects in cells are shown as compact JSON.
 */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string[] {
  const cells = rows.map((row) => columns.map((c) => text(c.cell(row))))
  const widths = columns.map((c, i) =>
    Math.max(c.header.length, ...cells.map((r) => (r[i] ?? '').length)),
  )
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...cells.map(line)]
}

/** One cell's text: strings as they are, `null`/`undefined` as `-`, the rest as JSON. */
export function text(value: unknown): string {
  if (value === undefined || value === null) return '-'
  if (typeof value === 'string') return value === '' ? '""' : value
  return JSON.stringify(value)
}

/** Prints `value` as JSON in json mode, else as a table of `rows`. */
export function print<T>(
  io: CliIo,
  mode: OutputMode,
  value: unknown,
  rows: readonly T[],
  columns: readonly Column<T>[],
): void {
  if (mode === 'json') io.stdout(JSON.stringify(value, null, 2))
  else for (const line of formatTable(rows, columns)) io.stdout(line)
}

/** A record as the API returns it, with only the fields the CLI shows. */
export interface WireRecord {
  readonly kind: string
  readonly id: string
  readonly data: unknown
  readonly labels: Readonly<Record<string, string>>
  readonly owner: string | null
  readonly revision: number
  readonly expiresAt?: number
}

/** The columns of a record table. */
export const RECORD_COLUMNS: readonly Column<WireRecord>[] = [
  { header: 'KIND', cell: (r) => r.kind },
  { header: 'ID', cell: (r) => r.id },
  { header: 'OWNER', cell: (r) => r.owner },
  { header: 'REV', cell: (r) => r.revision },
  { header: 'LABELS', cell: (r) => labelText(r.labels) },
  { header: 'DATA', cell: (r) => r.data },
]

function labelText(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels)
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(',')
}
