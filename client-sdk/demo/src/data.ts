// The demo's data side: bound charts, tables and narrative metrics drawn from the live data
// the SDK holds (message 102, `GET .../blocks/{id}/data` pages), and the panel that takes a
// user from a CSV file to a saved query with a parameter and blocks bound to it.

import { marked } from 'marked'
import DOMPurify from 'dompurify'
import type {
  Block, BlockData, BlockDataPage, Canvas, CanvasClient, ChartSeries, DataSource, DataStatus,
  QueryParameter, SavedQuery, TablePageColumn
} from '../../src/index.js'

type Attrs = Record<string, string | number | boolean | ((ev: Event) => void)>

export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Attrs = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v)
    else if (typeof v === 'boolean') { if (v) el.setAttribute(k, '') }
    else el.setAttribute(k, String(v))
  }
  el.append(...children)
  return el
}

export function svg (tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  if (text !== undefined) el.textContent = text
  return el
}

function message (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

const SERIES_COLORS = ['#2f6fed', '#f08c00', '#2b8a3e', '#c92a2a', '#7048e8', '#0b7285', '#e64980', '#5c940d']

// ---- markdown ------------------------------------------------------------------------

/**
 * Markdown to safe HTML: raw HTML in the text is shown as text (escaped), and DOMPurify
 * drops whatever could still run (javascript: links, event attributes).
 */
export function markdownHtml (text: string): string {
  const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const html = marked.parse(text, {
    async: false,
    gfm: true,
    breaks: true,
    renderer: Object.assign(new marked.Renderer(), {
      html: (token: { text: string }) => escapeHtml(token.text)
    })
  })
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ['style', 'form', 'input', 'img'] })
}

// ---- bindings --------------------------------------------------------------------------

/** A chart's or table's binding (`content.data_source` of type `query`). */
export interface Binding { type: 'query', query_id: string, parameters: Record<string, unknown> }

export function bindingOf (b: Block): Binding | null {
  if (b.type !== 'chart' && b.type !== 'table') return null
  const source = b.content.data_source as Partial<Binding> | undefined
  if (typeof source !== 'object' || source === null || source.type !== 'query' || typeof source.query_id !== 'string') return null
  const parameters = typeof source.parameters === 'object' && source.parameters !== null ? source.parameters : {}
  return { type: 'query', query_id: source.query_id, parameters }
}

/** `min:number=0, region:string=north` -> declared parameters. */
export function parseParameters (text: string): Record<string, QueryParameter> {
  const out: Record<string, QueryParameter> = {}
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(string|number|boolean|date)\s*(?:=\s*(.*))?$/.exec(part)
    if (m === null) throw new Error(`parameter "${part}" is not name:type=default (types: string, number, boolean, date)`)
    const [, name = '', type = 'string', raw] = m
    const param: QueryParameter = { type: type as QueryParameter['type'] }
    if (raw !== undefined && raw !== '') param.default = typed(type, raw)
    out[name] = param
  }
  return out
}

function typed (type: string, raw: string): unknown {
  if (type === 'number') {
    const n = Number(raw)
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`"${raw}" is not a number`)
    return n
  }
  if (type === 'boolean') {
    if (raw !== 'true' && raw !== 'false') throw new Error(`"${raw}" is not true or false`)
    return raw === 'true'
  }
  return raw
}

// ---- formatting ------------------------------------------------------------------------

const currency = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' })
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 })

/** A cell as its column's format shows it: currency in dollars, percentages (values in percent) with "%". */
export function formatCell (value: unknown, format: string | undefined): string {
  if (value === null || value === undefined) return '—'
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN
  if (format === 'currency' && Number.isFinite(n)) return currency.format(n)
  if (format === 'percentage' && Number.isFinite(n)) return `${decimal.format(n)} %`
  if (format === 'number' && Number.isFinite(n)) return decimal.format(n)
  if (typeof value === 'number') return decimal.format(value)
  return typeof value === 'string' ? value : JSON.stringify(value)
}

export function age (computedAt: string | null, now = Date.now()): string {
  if (computedAt === null) return ''
  const seconds = Math.max(0, Math.round((now - Date.parse(computedAt)) / 1000))
  if (seconds < 60) return `computed ${seconds} s ago`
  const minutes = Math.round(seconds / 60)
  if (minutes < 60) return `computed ${minutes} min ago`
  return `computed ${Math.round(minutes / 60)} h ago`
}

// ---- the status line of a bound block --------------------------------------------------

/** Spinner while pending or running, the result's age and whether it came from the cache, a refresh button. */
export function statusLine (canvas: Canvas, blockId: string, onError: (e: string) => void): HTMLElement {
  const status: DataStatus | null = canvas.dataStatus(blockId)
  const state = status?.state ?? 'pending'
  const busy = state === 'pending' || state === 'running'
  const line = h('div', { class: 'data-status', 'data-state': state },
    busy ? h('span', { class: 'spinner', title: state }) : '',
    h('span', { class: 'state' }, state),
    h('span', { class: 'data-age', 'data-computed-at': busy ? '' : status?.computed_at ?? '' }, busy ? '' : age(status?.computed_at ?? null)),
    status?.from_cache === true && !busy ? h('span', { class: 'cached', title: 'answered from the result cache' }, 'from cache') : '',
    h('button', {
      class: 'refresh',
      title: 'run the query again, past the cache',
      onclick: () => { canvas.refresh(blockId).catch((err) => onError(message(err))) }
    }, '↻'))
  if (status?.error != null) line.append(h('div', { class: 'data-error' }, `${status.error.code}: ${status.error.message}`))
  return line
}

/** Inputs for a bound block's parameters (declared by the query, values from the binding). */
export function parameterInputs (canvas: Canvas, b: Block, binding: Binding, query: SavedQuery | undefined, onError: (e: string) => void): HTMLElement {
  const declared = query?.parameters ?? {}
  const names = [...new Set([...Object.keys(declared), ...Object.keys(binding.parameters)])]
  const row = h('div', { class: 'params' })
  for (const name of names) {
    const current = binding.parameters[name] ?? declared[name]?.default ?? ''
    const kind = declared[name]?.type ?? (typeof current === 'number' ? 'number' : typeof current === 'boolean' ? 'boolean' : 'string')
    const input = h('input', { class: 'param', 'data-name': name, value: String(current), size: 6, type: kind === 'number' ? 'number' : 'text' })
    input.addEventListener('change', () => {
      try {
        const value = typed(kind, input.value)
        canvas.setContent(b.id, 'data_source', { ...binding, parameters: { ...binding.parameters, [name]: value } })
      } catch (err) { onError(message(err)) }
    })
    row.append(h('label', {}, `${name} `, input))
  }
  return row
}

// ---- charts ----------------------------------------------------------------------------

function niceStep (max: number, ticks: number): number {
  const raw = max / ticks
  const power = 10 ** Math.floor(Math.log10(raw))
  const unit = raw / power
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power
}

/** A bar (grouped) or line chart of `series` with axes, ticks and a legend. */
export function drawChart (series: ChartSeries[], kind: string, yLabel: string): SVGElement {
  const W = 460
  const H = 220
  const left = 48
  const right = 10
  const top = 10
  const bottom = 48
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: `bound-chart ${kind}`, 'data-series': series.length })
  const xs: string[] = []
  for (const s of series) for (const p of s.points) if (!xs.includes(String(p.x))) xs.push(String(p.x))
  const values = series.flatMap((s) => s.points.map((p) => p.y ?? 0))
  const maxV = Math.max(0, ...values)
  const minV = Math.min(0, ...values)
  const step = niceStep(Math.max(1, maxV - minV), 4)
  const lo = Math.floor(minV / step) * step
  const hi = Math.max(lo + step, Math.ceil(maxV / step) * step)
  const plotW = W - left - right
  const plotH = H - top - bottom
  const yAt = (v: number): number => top + plotH - ((v - lo) / (hi - lo)) * plotH
  // y axis with ticks and grid lines
  for (let v = lo; v <= hi + step / 2; v += step) {
    const y = yAt(v)
    chart.append(svg('line', { x1: left, y1: y, x2: W - right, y2: y, stroke: '#e3e6ee' }))
    chart.append(svg('text', { x: left - 4, y: y + 3, 'text-anchor': 'end', 'font-size': 10, fill: '#505a70', class: 'tick' }, decimal.format(v)))
  }
  chart.append(svg('line', { x1: left, y1: top, x2: left, y2: top + plotH, stroke: '#8a93a8' }))
  chart.append(svg('line', { x1: left, y1: yAt(Math.max(lo, 0)), x2: W - right, y2: yAt(Math.max(lo, 0)), stroke: '#8a93a8' }))
  chart.append(svg('text', { x: 10, y: top + plotH / 2, 'font-size': 10, fill: '#505a70', transform: `rotate(-90 10 ${top + plotH / 2})`, 'text-anchor': 'middle' }, yLabel))
  const band = plotW / Math.max(1, xs.length)
  xs.forEach((x, i) => {
    chart.append(svg('text', { x: left + i * band + band / 2, y: top + plotH + 14, 'text-anchor': 'middle', 'font-size': 11, fill: '#505a70', class: 'x-label' }, x))
  })
  series.forEach((s, si) => {
    const color = SERIES_COLORS[si % SERIES_COLORS.length] ?? '#2f6fed'
    if (kind === 'line') {
      const pts = s.points.map((p) => `${left + xs.indexOf(String(p.x)) * band + band / 2},${yAt(p.y ?? 0)}`)
      chart.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2, class: 'line', 'data-series': s.name }))
      for (const p of s.points) {
        const dot = svg('circle', { cx: left + xs.indexOf(String(p.x)) * band + band / 2, cy: yAt(p.y ?? 0), r: 3, fill: color, class: 'point' })
        dot.append(svg('title', {}, `${s.name} · ${String(p.x)}: ${decimal.format(p.y ?? 0)}`))
        chart.append(dot)
      }
    } else {
      const inner = band * 0.8
      const w = inner / Math.max(1, series.length)
      for (const p of s.points) {
        const i = xs.indexOf(String(p.x))
        const y0 = yAt(Math.max(lo, 0))
        const y1 = yAt(p.y ?? 0)
        const bar = svg('rect', {
          x: left + i * band + band * 0.1 + si * w, y: Math.min(y0, y1), width: Math.max(1, w - 2), height: Math.abs(y0 - y1),
          fill: color, class: 'bar', 'data-series': s.name, 'data-x': String(p.x), 'data-y': p.y ?? 0
        })
        bar.append(svg('title', {}, `${s.name} · ${String(p.x)}: ${decimal.format(p.y ?? 0)}`))
        chart.append(bar)
      }
    }
  })
  // legend, one entry per series
  let lx = left
  series.forEach((s, si) => {
    const color = SERIES_COLORS[si % SERIES_COLORS.length] ?? '#2f6fed'
    const g = svg('g', { class: 'legend-item', 'data-series': s.name })
    g.append(svg('rect', { x: lx, y: H - 16, width: 10, height: 10, fill: color }))
    g.append(svg('text', { x: lx + 14, y: H - 7, 'font-size': 11, fill: '#1d2330' }, s.name))
    chart.append(g)
    lx += 24 + s.name.length * 7
  })
  return chart
}

/** A bound chart's body. */
export function boundChart (canvas: Canvas, b: Block, binding: Binding, query: SavedQuery | undefined, onError: (e: string) => void): Array<Node | string> {
  const data: BlockData | undefined = canvas.blockData(b.id)
  const config = (b.content.config ?? {}) as { y_axis?: string, aggregation?: string }
  const kind = b.content.chart_type === 'line' ? 'line' : 'bar'
  const title = typeof b.content.title === 'string' ? b.content.title : 'Chart'
  const out: Array<Node | string> = [
    h('div', { class: 'chart-title' }, title, h('span', { class: 'muted' }, query !== undefined && query.name !== title ? ` · ${query.name}` : '')),
    statusLine(canvas, b.id, onError),
    parameterInputs(canvas, b, binding, query, onError)
  ]
  if (data?.series !== undefined && data.status === 'completed') {
    out.push(drawChart(data.series, kind, `${config.aggregation ?? 'sum'} of ${config.y_axis ?? ''}`))
  }
  return out
}

// ---- tables ----------------------------------------------------------------------------

/** What a bound table shows: the page asked for, fetched over REST. */
export interface TableView { page: number, sort: string | null, data: BlockDataPage | null, error: string | null }

export function boundTable (canvas: Canvas, b: Block, binding: Binding, query: SavedQuery | undefined, view: TableView,
  go: (page: number, sort: string | null) => void, onError: (e: string) => void): Array<Node | string> {
  const title = typeof b.content.title === 'string' ? b.content.title : 'Table'
  const out: Array<Node | string> = [
    h('div', { class: 'chart-title' }, title, h('span', { class: 'muted' }, query !== undefined && query.name !== title ? ` · ${query.name}` : '')),
    statusLine(canvas, b.id, onError),
    parameterInputs(canvas, b, binding, query, onError)
  ]
  if (view.error !== null) out.push(h('div', { class: 'data-error' }, view.error))
  const page = view.data
  if (page === null || page.status !== 'completed') return out
  const columns: TablePageColumn[] = page.columns
  const sortField = view.sort?.replace(/^-/, '') ?? null
  const descending = view.sort?.startsWith('-') === true
  const table = h('table', { class: 'bound-table' },
    h('thead', {}, h('tr', {}, ...columns.map((c) => {
      const mark = sortField === c.name ? (descending ? ' ▼' : ' ▲') : ''
      return h('th', {
        'data-field': c.name,
        class: `sortable ${c.format ?? ''}`,
        title: 'sort',
        onclick: () => go(1, sortField === c.name && !descending ? `-${c.name}` : c.name)
      }, `${c.header ?? c.name}${mark}`)
    }))),
    h('tbody', {}, ...page.rows.map((row) => h('tr', {}, ...columns.map((c, i) =>
      h('td', { class: `cell ${c.format ?? ''}` }, formatCell(row[i], c.format)))))))
  const pages = page.pages ?? 1
  const current = page.page ?? 1
  out.push(table, h('div', { class: 'pager' },
    h('button', { class: 'prev', onclick: () => go(current - 1, view.sort), ...(current <= 1 ? { disabled: true } : {}) }, '‹'),
    h('span', { class: 'page-info' }, `page ${current} of ${pages} · ${page.total_rows} rows`),
    h('button', { class: 'next', onclick: () => go(current + 1, view.sort), ...(current >= pages ? { disabled: true } : {}) }, '›')))
  return out
}

// ---- the data panel --------------------------------------------------------------------

const SAMPLE_QUERY = 'SELECT region, product, amount FROM sales WHERE amount >= {{min}} ORDER BY region'

/**
 * The panel beside the canvas: upload a CSV as a source, save a query with parameters,
 * add a chart, a table and a narrative metric bound to it.
 */
export function dataPanel (client: CanvasClient, canvas: Canvas, projectId: () => string | null, queries: Map<string, SavedQuery>,
  onQueries: () => void): { el: HTMLElement, load: () => void } {
  const result = h('p', { class: 'muted', id: 'data-result' })
  const sources = h('ul', { id: 'sources' })
  const querySelect = h('select', { id: 'query-select' })
  const fail = (err: unknown): void => { result.textContent = message(err); result.classList.add('error') }
  const done = (text: string): void => { result.textContent = text; result.classList.remove('error') }

  const showSources = (list: DataSource[]): void => {
    sources.replaceChildren(...list.map((s) => h('li', { 'data-name': s.name },
      h('strong', {}, s.name), ' ',
      h('span', { class: 'muted' }, (s.schema_info?.tables[0]?.columns ?? []).map((c) => `${c.name}: ${c.type}`).join(', ')))))
  }
  const showQueries = (): void => {
    const chosen = querySelect.value
    querySelect.replaceChildren(...[...queries.values()].map((q) => h('option', { value: q.id }, q.name)))
    if (chosen !== '' && queries.has(chosen)) querySelect.value = chosen
  }
  const load = async (): Promise<void> => {
    const project = projectId()
    if (project === null) return
    const [list, qs] = await Promise.all([client.listDataSources(project), client.listQueries(project)])
    showSources(list)
    queries.clear()
    for (const q of qs) queries.set(q.id, q)
    showQueries()
    onQueries()
  }

  const upload = async (): Promise<void> => {
    const project = projectId()
    const file = (document.getElementById('csv-file') as HTMLInputElement).files?.[0]
    const name = (document.getElementById('source-name') as HTMLInputElement).value.trim() || 'sales'
    if (project === null || file === undefined) { fail('choose a CSV file first'); return }
    try {
      const existing = (await client.listDataSources(project)).find((s) => s.name.toLowerCase() === name.toLowerCase())
      const source = existing ?? await client.createDataSource(project, { name, type: 'file' })
      const uploaded = await client.uploadFile(source.id, file, 'text/csv')
      const rows = uploaded.schema_info?.tables[0]?.row_count ?? 0
      done(`${existing !== undefined ? 'replaced' : 'uploaded'} ${file.name} as table "${uploaded.name}" (${rows} rows)`)
      await load()
    } catch (err) { fail(err) }
  }
  const saveQuery = async (): Promise<void> => {
    const project = projectId()
    if (project === null) return
    try {
      const parameters = parseParameters((document.getElementById('query-params') as HTMLInputElement).value)
      const q = await client.createQuery(project, {
        name: (document.getElementById('query-name') as HTMLInputElement).value.trim() || 'Sales query',
        query_text: (document.getElementById('query-text') as HTMLTextAreaElement).value,
        parameters
      })
      // run it once, so a mistake shows here rather than in the blocks
      const run = await client.executeQuery(q.id)
      queries.set(q.id, q)
      showQueries()
      querySelect.value = q.id
      onQueries()
      done(`saved query "${q.name}"${run.result !== undefined ? ` (${run.result.total_rows} rows with the defaults)` : ''}`)
    } catch (err) { fail(err) }
  }
  const nextY = (): number => canvas.blocks().reduce((max, b) => Math.max(max, b.position.y + b.position.h), 0)
  const defaults = (): Record<string, unknown> => {
    const q = queries.get(querySelect.value)
    return Object.fromEntries(Object.entries(q?.parameters ?? {}).map(([k, p]) => [k, p.default ?? null]))
  }
  const bind = (kind: 'chart' | 'table'): void => {
    const q = queries.get(querySelect.value)
    if (q === undefined) { fail('save or choose a query first'); return }
    const field = (id: string): string => (document.getElementById(id) as HTMLInputElement).value.trim()
    try {
      const data_source = { type: 'query', query_id: q.id, parameters: defaults() }
      const y = nextY()
      if (kind === 'chart') {
        const config: Record<string, string> = { x_axis: field('bind-x'), y_axis: field('bind-y'), aggregation: 'sum' }
        if (field('bind-color') !== '') config.color = field('bind-color')
        canvas.addBlock({
          type: 'chart',
          position: { x: 0, y, w: 6, h: 6 },
          content: { chart_type: (document.getElementById('bind-chart-type') as HTMLSelectElement).value, title: `${config.y_axis} by ${config.x_axis}`, data_source, config }
        })
      } else {
        const format = (document.getElementById('bind-format') as HTMLSelectElement).value
        const columns = [field('bind-x'), field('bind-color')].filter((c) => c !== '')
          .map((c) => ({ field: c, header: c[0]?.toUpperCase() + c.slice(1), type: 'string' }))
        columns.push({ field: field('bind-y'), header: field('bind-y')[0]?.toUpperCase() + field('bind-y').slice(1), type: format })
        canvas.addBlock({
          type: 'table',
          position: { x: 6, y: Math.max(0, y - 6), w: 6, h: 6 },
          content: {
            title: `${field('bind-y')} by ${[field('bind-x'), field('bind-color')].filter((c) => c !== '').join(' and ')}`,
            data_source,
            columns,
            pagination: { enabled: true, pageSize: 5 },
            sorting: { enabled: true, defaultSort: `-${field('bind-y')}` },
            filtering: { enabled: true }
          }
        })
      }
      done(`added a ${kind} bound to "${q.name}"`)
    } catch (err) { fail(err) }
  }
  const metric = (): void => {
    const charts = canvas.blocks().filter((b) => bindingOf(b) !== null)
    const source = charts.find((b) => b.type === 'chart') ?? charts[0]
    if (source === undefined) { fail('bind a chart or table first'); return }
    const calc = (document.getElementById('metric-calc') as HTMLSelectElement).value
    try {
      canvas.addBlock({
        type: 'narrative',
        position: { x: 0, y: nextY(), w: 12, h: 4 },
        content: {
          text: `## Key metric\n**${calc.replace('_', ' ')}** of ${String(source.content.title ?? source.id)}: **{{metric}}**`,
          data_bindings: [{ key: 'metric', source: source.id, calculation: calc }]
        }
      })
      done(`added a narrative watching ${calc} of ${source.id}`)
    } catch (err) { fail(err) }
  }

  const panel = h('aside', { class: 'data card', id: 'data-panel' },
    h('h3', {}, 'Data'),
    h('label', { class: 'step' }, '1. Upload a CSV'),
    h('div', { class: 'row' },
      h('input', { id: 'source-name', value: 'sales', size: 8, title: 'table name in SQL' }),
      h('input', { id: 'csv-file', type: 'file', accept: '.csv,text/csv' })),
    h('button', { id: 'upload-csv', class: 'primary', onclick: () => { void upload() } }, 'Upload'),
    sources,
    h('label', { class: 'step' }, '2. Save a query ({{name}} for parameters)'),
    h('input', { id: 'query-name', placeholder: 'query name', value: 'Sales over a minimum' }),
    h('textarea', { id: 'query-text', rows: 4 }, SAMPLE_QUERY),
    h('input', { id: 'query-params', value: 'min:number=0', title: 'name:type=default, ...' }),
    h('button', { id: 'save-query', onclick: () => { void saveQuery() } }, 'Save query'),
    h('label', { class: 'step' }, '3. Bind blocks to'),
    querySelect,
    h('div', { class: 'row' },
      h('input', { id: 'bind-x', value: 'region', size: 6, title: 'x axis' }),
      h('input', { id: 'bind-y', value: 'amount', size: 6, title: 'y axis (numbers)' }),
      h('input', { id: 'bind-color', value: 'product', size: 6, title: 'series (color), optional' })),
    h('div', { class: 'row' },
      h('select', { id: 'bind-chart-type' }, h('option', { value: 'bar' }, 'bar'), h('option', { value: 'line' }, 'line')),
      h('button', { id: 'bind-chart', onclick: () => bind('chart') }, '+ Chart')),
    h('div', { class: 'row' },
      h('select', { id: 'bind-format' }, h('option', { value: 'currency' }, 'currency'), h('option', { value: 'percentage' }, 'percentage'), h('option', { value: 'number' }, 'number')),
      h('button', { id: 'bind-table', onclick: () => bind('table') }, '+ Table')),
    h('div', { class: 'row' },
      h('select', { id: 'metric-calc' }, ...['sum', 'percentage_change', 'avg', 'max', 'min', 'count', 'latest', 'first'].map((c) => h('option', { value: c }, c))),
      h('button', { id: 'bind-metric', onclick: () => metric() }, '+ Metric')),
    result)
  return { el: panel, load: () => { load().catch(fail) } }
}
