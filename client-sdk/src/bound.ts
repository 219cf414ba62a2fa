/**
 * Blocks bound to live data, without Yjs: reading a message-102 body, a narrative's
 * `data_bindings`, and a narrative's text rendered with their values (the rule of the
 * server's `engine/src/narrative.rs`, so the SDK shows what `content.rendered_text` of the
 * JSON view says).
 */

import type { BlockData, ChartSeries, ResultColumn } from './types.js'

/** One entry of a narrative's `data_bindings`. */
export interface NarrativeBinding {
  /** Its index in the array. */
  index: number
  /** The placeholder name (`{{key}}` in the text). */
  key: string
  /** The bound chart or table block it is computed from. */
  source: string
  /** `percentage_change`, `sum`, `avg`, `min`, `max`, `count`, `latest`, `first`. */
  calculation: string
  /** The value the server wrote, if any (null: not computed yet). */
  value: unknown
}

/** The well-formed entries (`key`, `source`, `calculation` strings) of a content's `data_bindings`. */
export function bindingsIn (content: Record<string, unknown>): NarrativeBinding[] {
  const entries = content.data_bindings
  if (!Array.isArray(entries)) return []
  const out: NarrativeBinding[] = []
  entries.forEach((e: unknown, index) => {
    if (typeof e !== 'object' || e === null) return
    const entry = e as Record<string, unknown>
    const { key, source, calculation } = entry
    if (typeof key !== 'string' || typeof source !== 'string' || typeof calculation !== 'string') return
    out.push({ index, key, source, calculation, value: entry.value ?? null })
  })
  return out
}

/**
 * `text` with every `{{key}}` whose binding has a value replaced by it (numbers as JSON
 * writes them, strings as they are), in the bindings' order; other placeholders stay.
 */
export function renderNarrative (text: string, bindings: NarrativeBinding[]): string {
  let out = text
  for (const b of bindings) {
    if (b.value === null || b.value === undefined) continue
    const shown = typeof b.value === 'string' ? b.value : JSON.stringify(b.value)
    out = out.split(`{{${b.key}}}`).join(shown)
  }
  return out
}

function isColumn (c: unknown): c is ResultColumn {
  return typeof c === 'object' && c !== null &&
    typeof (c as ResultColumn).name === 'string' && typeof (c as ResultColumn).type === 'string'
}

/**
 * A decoded message-102 body checked field by field; null when it is not one (a server of
 * another version, or garbage): the SDK ignores it rather than handing on a wrong shape.
 */
export function blockDataFrom (body: unknown): BlockData | null {
  if (typeof body !== 'object' || body === null) return null
  const b = body as Record<string, unknown>
  if (typeof b.block_id !== 'string' || typeof b.status !== 'string') return null
  const columns = Array.isArray(b.columns) ? b.columns.filter(isColumn) : []
  const rows = Array.isArray(b.rows) ? b.rows.filter((r): r is unknown[] => Array.isArray(r)) : []
  const data: BlockData = {
    block_id: b.block_id,
    status: b.status,
    execution_id: typeof b.execution_id === 'string' ? b.execution_id : null,
    columns,
    rows,
    total_rows: typeof b.total_rows === 'number' ? b.total_rows : Number(b.total_rows ?? rows.length),
    computed_at: typeof b.computed_at === 'string' ? b.computed_at : null,
    from_cache: b.from_cache === true
  }
  if (Array.isArray(b.series)) data.series = b.series as ChartSeries[]
  const binding = b.binding as { query_id?: unknown, parameters?: unknown } | undefined | null
  if (typeof binding === 'object' && binding !== null && typeof binding.query_id === 'string') {
    const parameters = typeof binding.parameters === 'object' && binding.parameters !== null ? binding.parameters as Record<string, unknown> : {}
    data.binding = { query_id: binding.query_id, parameters }
  }
  const error = b.error as { code?: unknown, message?: unknown } | undefined | null
  if (typeof error === 'object' && error !== null && typeof error.code === 'string') {
    data.error = { code: error.code, message: typeof error.message === 'string' ? error.message : '' }
  }
  return data
}

/** The rows of a block's data as objects keyed by column name. */
export function rowObjects (data: Pick<BlockData, 'columns' | 'rows'>): Array<Record<string, unknown>> {
  return data.rows.map((row) => Object.fromEntries(data.columns.map((c, i) => [c.name, row[i] ?? null])))
}

/** JSON with object keys sorted, to compare values whatever order their keys came in. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** Whether `data` answers the binding `source` (a block's `content.data_source`). */
export function answersBinding (data: BlockData, source: unknown): boolean {
  if (data.binding === undefined || typeof source !== 'object' || source === null) return false
  const s = source as { query_id?: unknown, parameters?: unknown }
  const parameters = typeof s.parameters === 'object' && s.parameters !== null ? s.parameters : {}
  return s.query_id === data.binding.query_id && canonicalJson(parameters) === canonicalJson(data.binding.parameters)
}
