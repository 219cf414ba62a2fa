// The demo page: a small single-page app over the SDK (imported from ../../src, bundled by
// esbuild into server/assets/demo/). Views: sign in -> projects and canvases -> a canvas.

import {
  CanvasClient, isCanvasError, type Block, type Canvas, type CanvasSummary, type Peer,
  type Project, type SavedQuery, type Template, type User, type Version, Y
} from '../../src/index.js'
import { age, bindingOf, boundChart, boundTable, dataPanel, markdownHtml, type TableView } from './data.js'

const TOKEN_KEY = 'canvas-demo-token'
const COL_WIDTH = 80
const PALETTE = ['#e91e63', '#3f51b5', '#009688', '#ff9800', '#9c27b0', '#4caf50', '#f44336', '#00bcd4']

const client = new CanvasClient({
  baseUrl: location.origin,
  token: localStorage.getItem(TOKEN_KEY),
  onTokenChange: (token) => {
    if (token === null) localStorage.removeItem(TOKEN_KEY)
    else localStorage.setItem(TOKEN_KEY, token)
  }
})

const app = byId('app')
let me: User | null = null
let openCanvas: Canvas | null = null

// ---- small DOM helpers ---------------------------------------------------------------

function byId (id: string): HTMLElement {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`#${id} missing`)
  return el
}

type Attrs = Record<string, string | number | boolean | ((ev: Event) => void)>

function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Attrs = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v)
    else if (typeof v === 'boolean') { if (v) el.setAttribute(k, '') }
    else el.setAttribute(k, String(v))
  }
  el.append(...children)
  return el
}

function svg (tag: string, attrs: Record<string, string | number>): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  return el
}

function colorFor (id: string): string {
  let hash = 0
  for (const c of id) hash = (hash * 31 + c.charCodeAt(0)) >>> 0
  return PALETTE[hash % PALETTE.length] ?? '#3f51b5'
}

function message (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function value (id: string): string {
  return (byId(id) as HTMLInputElement).value.trim()
}

// ---- routing ------------------------------------------------------------------------

async function route (): Promise<void> {
  openCanvas?.close()
  openCanvas = null
  app.classList.remove('read-only')
  if (client.token === null) { renderAuth(); return }
  if (me === null) {
    try {
      me = await client.me()
    } catch (err) {
      if (isCanvasError(err, 'unauthorized')) { client.setToken(null); renderAuth(); return }
      app.replaceChildren(h('p', { class: 'error' }, message(err)))
      return
    }
  }
  byId('whoami').textContent = `${me.username} (${me.email})`
  byId('logout').hidden = false
  const m = /^#\/canvas\/([^/]+)$/.exec(location.hash)
  if (m?.[1] !== undefined) renderCanvas(decodeURIComponent(m[1]))
  else await renderHome()
}

window.addEventListener('hashchange', () => { void route() })
byId('logout').addEventListener('click', () => {
  void client.logout().catch(() => {}).finally(() => {
    me = null
    byId('whoami').textContent = ''
    byId('logout').hidden = true
    location.hash = ''
    void route()
  })
})

// ---- sign up / log in -----------------------------------------------------------------

function renderAuth (): void {
  byId('whoami').textContent = ''
  byId('logout').hidden = true
  const error = h('p', { class: 'error', id: 'auth-error' })
  const submit = async (kind: 'signup' | 'login'): Promise<void> => {
    error.textContent = ''
    try {
      const res = kind === 'signup'
        ? await client.signup({ email: value('auth-email'), username: value('auth-username'), password: value('auth-password') })
        : await client.login(value('auth-email'), value('auth-password'))
      me = res.user
      await route()
    } catch (err) {
      error.textContent = message(err)
    }
  }
  app.replaceChildren(h('form', { class: 'auth card', onsubmit: (ev) => { ev.preventDefault(); void submit('login') } },
    h('h2', {}, 'Sign up or log in'),
    h('input', { id: 'auth-email', type: 'email', placeholder: 'email', required: true, autocomplete: 'email' }),
    h('input', { id: 'auth-username', placeholder: 'username (sign up only)', autocomplete: 'username' }),
    h('input', { id: 'auth-password', type: 'password', placeholder: 'password (8+ characters)', required: true, autocomplete: 'current-password' }),
    h('div', { class: 'row' },
      h('button', { id: 'login', class: 'primary', type: 'submit' }, 'Log in'),
      h('button', { id: 'signup', type: 'button', onclick: () => { void submit('signup') } }, 'Sign up')),
    error))
}

// ---- projects and canvases ------------------------------------------------------------

let selectedProject: string | null = null

async function renderHome (): Promise<void> {
  const error = h('p', { class: 'error', id: 'home-error' })
  const projectList = h('ul', { id: 'projects' })
  const canvasList = h('ul', { id: 'canvases' })
  const templateSelect = h('select', { id: 'new-canvas-template' }, h('option', { value: '' }, 'blank canvas'))
  const canvasPanel = h('section', { class: 'card' },
    h('h3', {}, 'Canvases'), canvasList,
    h('div', { class: 'row' },
      h('input', { id: 'new-canvas-name', placeholder: 'new canvas name' }), templateSelect,
      h('button', { id: 'create-canvas', class: 'primary', onclick: () => { void createCanvas() } }, 'Create')),
    h('h3', {}, 'Add a member'),
    h('div', { class: 'row' },
      h('input', { id: 'member-email', placeholder: 'their email' }),
      h('select', { id: 'member-role' }, h('option', { value: 'editor' }, 'editor'), h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin')),
      h('button', { id: 'add-member', onclick: () => { void addMember() } }, 'Add')),
    h('p', { class: 'muted', id: 'member-result' }))
  app.replaceChildren(h('div', { class: 'home' },
    h('section', { class: 'card' },
      h('h3', {}, 'Projects'), projectList,
      h('div', { class: 'row' },
        h('input', { id: 'new-project-name', placeholder: 'new project name' }),
        h('button', { id: 'create-project', class: 'primary', onclick: () => { void createProject() } }, 'Create'))),
    canvasPanel), error)

  const fail = (err: unknown): void => { error.textContent = message(err) }

  const showCanvases = async (): Promise<void> => {
    canvasPanel.hidden = selectedProject === null
    if (selectedProject === null) return
    const canvases: CanvasSummary[] = await client.listCanvases(selectedProject)
    canvasList.replaceChildren(...canvases.map((c) => h('li', { 'data-id': c.id, onclick: () => { location.hash = `#/canvas/${c.id}` } },
      h('span', {}, c.name), h('span', { class: 'muted' }, new Date(c.updated_at).toLocaleString()))))
    if (canvases.length === 0) canvasList.replaceChildren(h('li', { class: 'muted' }, 'no canvases yet'))
  }
  const showProjects = async (): Promise<void> => {
    const projects: Project[] = await client.listProjects()
    if (selectedProject !== null && !projects.some((p) => p.id === selectedProject)) selectedProject = null
    selectedProject ??= projects[0]?.id ?? null
    projectList.replaceChildren(...projects.map((p) => h('li', {
      'data-id': p.id,
      class: p.id === selectedProject ? 'selected' : '',
      onclick: () => { selectedProject = p.id; void showProjects().catch(fail) }
    }, h('span', {}, p.name), h('span', { class: 'muted' }, p.role))))
    if (projects.length === 0) projectList.replaceChildren(h('li', { class: 'muted' }, 'no projects yet'))
    await showCanvases()
  }
  const createProject = async (): Promise<void> => {
    try {
      const p = await client.createProject({ name: value('new-project-name') })
      selectedProject = p.id
      await showProjects()
    } catch (err) { fail(err) }
  }
  const createCanvas = async (): Promise<void> => {
    if (selectedProject === null) return
    try {
      const template = (byId('new-canvas-template') as HTMLSelectElement).value
      const c = await client.createCanvas(selectedProject, {
        name: value('new-canvas-name') || 'Untitled canvas',
        ...(template !== '' ? { template_id: template } : {})
      })
      location.hash = `#/canvas/${c.id}`
    } catch (err) { fail(err) }
  }
  const addMember = async (): Promise<void> => {
    if (selectedProject === null) return
    try {
      const role = (byId('member-role') as HTMLSelectElement).value as 'editor' | 'viewer' | 'admin'
      await client.addMember(selectedProject, { email: value('member-email'), role })
      byId('member-result').textContent = `added ${value('member-email')} as ${role}`
    } catch (err) { fail(err) }
  }
  await showProjects().catch(fail)
  // templates are optional: a server without them just offers blank canvases
  client.listTemplates().then((templates: Template[]) => {
    templateSelect.append(...templates.map((t) => h('option', { value: t.id }, `template: ${t.name}`)))
  }, () => { templateSelect.hidden = true })
}

// ---- a canvas -----------------------------------------------------------------------

function renderCanvas (id: string): void {
  if (me === null) return
  app.classList.remove('read-only')
  const user = me
  const canvas = client.openCanvas(id)
  openCanvas = canvas
  const color = colorFor(user.id)
  canvas.presence.update({ user: { id: user.id, name: user.username, color }, cursor: null, selection: [] })

  const grid = h('div', { class: 'grid', id: 'grid' })
  const status = h('span', { class: 'badge', id: 'status', 'data-status': canvas.status }, canvas.status)
  const save = h('span', { class: 'badge', id: 'save-state', 'data-state': 'saved' }, 'Saved')
  const peersEl = h('span', { class: 'peers', id: 'peers' })
  const title = h('h2', { id: 'canvas-title' }, '…')
  const error = h('p', { class: 'error', id: 'canvas-error' })
  const versionList = h('ul', { id: 'versions' })
  const versionResult = h('p', { class: 'muted', id: 'version-result' })
  const versionsPanel = h('aside', { class: 'versions card' },
    h('h3', {}, 'Versions'),
    h('div', { class: 'row version-form' },
      h('input', { id: 'version-name', placeholder: 'name this version' }),
      h('button', { id: 'save-version', onclick: () => { void nameVersion() } }, 'Save')),
    versionResult,
    versionList)

  const add = (type: 'narrative' | 'table' | 'chart'): void => {
    try {
      const y = canvas.blocks().reduce((max, b) => Math.max(max, b.position.y + b.position.h), 0)
      const content: Record<string, unknown> =
        type === 'narrative'
          ? { text: '' }
          : type === 'table'
            ? {
                title: 'Table',
                columns: [{ field: 'product', header: 'Product', type: 'string' }, { field: 'sales', header: 'Sales', type: 'number' }],
                rows: [{ product: 'Widgets', sales: 120 }, { product: 'Gadgets', sales: 80 }]
              }
            : {
                chart_type: 'bar',
                title: 'Sales by region',
                config: { x_axis: 'region', y_axis: 'total_sales' },
                rows: [{ region: 'North', total_sales: 120 }, { region: 'South', total_sales: 80 }, { region: 'West', total_sales: 150 }]
              }
      const newId = canvas.addBlock({ type, position: { x: 0, y, w: 6, h: 4 }, content })
      select(newId)
    } catch (err) { error.textContent = message(err) }
  }

  // --- data: saved queries of the project, table pages fetched over REST
  const queries = new Map<string, SavedQuery>()
  const tables = new Map<string, TableView>()
  const dataError = (text: string): void => { error.textContent = text }
  const fetchPage = (blockId: string, page?: number, sort?: string | null): void => {
    const view = tables.get(blockId) ?? { page: 1, sort: null, data: null, error: null }
    if (page !== undefined) view.page = Math.max(1, page)
    if (sort !== undefined) view.sort = sort
    tables.set(blockId, view)
    const asked = { page: view.page, sort: view.sort }
    canvas.blockDataPage(blockId, { page: view.page, ...(view.sort !== null ? { sort: view.sort } : {}) }).then((data) => {
      if (asked.page !== view.page || asked.sort !== view.sort) return // a later request is on its way
      view.data = data
      view.error = null
      view.sort = data.sort ?? view.sort
      renderBlock(blockId)
    }, (err) => {
      view.error = message(err)
      renderBlock(blockId)
    })
  }
  const panel = dataPanel(client, canvas, () => canvas.meta().project_id, queries, () => {
    for (const b of canvas.blocks()) if (bindingOf(b) !== null) renderBlock(b.id)
  })
  // a block bound to a query saved after the panel loaded (by someone else): fetch its declaration
  const asked = new Set<string>()
  const ensureQuery = (queryId: string): void => {
    if (queries.has(queryId) || asked.has(queryId)) return
    asked.add(queryId)
    client.getQuery(queryId).then((q) => {
      queries.set(q.id, q)
      panel.load() // the panel lists it too (and the sources it reads)
      for (const b of canvas.blocks()) if (bindingOf(b)?.query_id === q.id) renderBlock(b.id)
    }, () => {}) // another project's query, or gone: the block's status says so
  }

  app.replaceChildren(
    h('div', { class: 'toolbar' },
      h('button', { onclick: () => { location.hash = '' } }, '← Canvases'),
      title,
      h('button', { id: 'add-narrative', onclick: () => add('narrative') }, '+ Narrative'),
      h('button', { id: 'add-table', onclick: () => add('table') }, '+ Table'),
      h('button', { id: 'add-chart', onclick: () => add('chart') }, '+ Chart'),
      h('button', { id: 'undo', onclick: () => { canvas.undo() } }, 'Undo'),
      h('button', { id: 'redo', onclick: () => { canvas.redo() } }, 'Redo'),
      status, save, peersEl),
    error,
    h('div', { class: 'workspace' }, grid, h('div', { class: 'side' }, panel.el, versionsPanel)))

  // --- blocks
  const elements = new Map<string, { el: HTMLElement, body: HTMLElement, preview: HTMLElement | null, rendered: string, unbind: () => void }>()
  let selected: string | null = null
  const select = (blockId: string | null): void => {
    selected = blockId
    canvas.presence.setSelection(blockId === null ? [] : [blockId])
    for (const [bid, e] of elements) e.el.classList.toggle('selected', bid === blockId)
  }

  const layoutGrid = (): void => {
    const rows = canvas.blocks().reduce((max, b) => Math.max(max, b.position.y + b.position.h), 0) + 4
    grid.style.width = `${canvas.columns * COL_WIDTH}px`
    grid.style.height = `${Math.max(12, rows) * canvas.rowHeight}px`
    grid.style.backgroundSize = `${COL_WIDTH}px ${canvas.rowHeight}px`
  }

  const place = (el: HTMLElement, b: Block): void => {
    el.style.left = `${b.position.x * COL_WIDTH}px`
    el.style.top = `${b.position.y * canvas.rowHeight}px`
    el.style.width = `${b.position.w * COL_WIDTH}px`
    el.style.height = `${b.position.h * canvas.rowHeight}px`
    el.dataset.x = String(b.position.x)
    el.dataset.y = String(b.position.y)
    el.dataset.w = String(b.position.w)
    el.dataset.h = String(b.position.h)
  }

  const renderBlock = (blockId: string): void => {
    const b = canvas.block(blockId)
    const existing = elements.get(blockId)
    if (b === undefined) {
      existing?.unbind()
      existing?.el.remove()
      elements.delete(blockId)
      return
    }
    if (existing === undefined) {
      const body = h('div', { class: 'body' })
      const header = h('header', {}, h('span', {}, b.type),
        h('button', { class: 'remove', title: 'remove block', onclick: () => { canvas.removeBlock(blockId) } }, '×'))
      const handle = h('div', { class: 'resize', title: 'drag to resize' })
      const el = h('div', { class: 'block', 'data-id': blockId, 'data-type': b.type }, header, body, handle)
      el.addEventListener('pointerdown', () => select(blockId))
      drag(el, header, blockId, 'move')
      drag(el, handle, blockId, 'resize')
      grid.append(el)
      const entry: { el: HTMLElement, body: HTMLElement, preview: HTMLElement | null, rendered: string, unbind: () => void } =
        { el, body, preview: null, rendered: '', unbind: () => {} }
      elements.set(blockId, entry)
      if (b.type === 'narrative') {
        entry.unbind = bindText(body, canvas.text(blockId))
        entry.preview = h('div', { class: 'rendered' })
        body.append(entry.preview)
      }
      if (b.type === 'table' && bindingOf(b) !== null) fetchPage(blockId)
    }
    const entry = elements.get(blockId)
    if (entry === undefined) return
    if (!entry.el.classList.contains('dragging')) place(entry.el, b)
    const binding = bindingOf(b)
    entry.el.classList.toggle('bound', binding !== null)
    if (b.type === 'narrative') {
      // the text with its metrics filled in, as markdown (sanitized: no HTML from the document runs)
      const text = canvas.renderedText(blockId)
      if (text !== entry.rendered && entry.preview !== null) {
        entry.rendered = text
        entry.preview.innerHTML = markdownHtml(text)
        entry.preview.hidden = text.trim() === ''
      }
    } else if (binding !== null) {
      const data = canvas.blockData(blockId)
      const query = queries.get(binding.query_id)
      if (query === undefined) ensureQuery(binding.query_id)
      const view = tables.get(blockId) ?? null
      const key = JSON.stringify([b.content, canvas.dataStatus(blockId), data?.execution_id, data?.computed_at, data?.series,
        query?.updated_at, view?.page, view?.sort, view?.data, view?.error])
      if (key !== entry.rendered) {
        entry.rendered = key
        entry.body.replaceChildren(...(b.type === 'chart'
          ? boundChart(canvas, b, binding, query, dataError)
          : boundTable(canvas, b, binding, query, view ?? { page: 1, sort: null, data: null, error: null },
            (page, sort) => fetchPage(blockId, page, sort), dataError)))
      }
    } else {
      const json = JSON.stringify(b.content)
      if (json !== entry.rendered) {
        entry.rendered = json
        entry.body.replaceChildren(...(b.type === 'table' ? renderTable(canvas, b) : b.type === 'chart' ? renderChart(canvas, b) : [h('pre', {}, json)]))
      }
    }
  }

  const renderAll = (): void => {
    for (const [bid, e] of elements) { e.unbind(); e.el.remove(); elements.delete(bid) }
    for (const b of canvas.blocks()) renderBlock(b.id)
    layoutGrid()
    title.textContent = canvas.meta().name || 'Untitled'
  }

  // drag to move / resize, snapped to the grid; the block moves live for everyone
  const drag = (el: HTMLElement, handle: HTMLElement, blockId: string, mode: 'move' | 'resize'): void => {
    handle.addEventListener('pointerdown', (down: PointerEvent) => {
      if ((down.target as HTMLElement).closest('button') !== null) return
      down.preventDefault()
      down.stopPropagation()
      select(blockId)
      const start = canvas.block(blockId)?.position
      if (start === undefined) return
      handle.setPointerCapture(down.pointerId)
      el.classList.add('dragging')
      const move = (ev: PointerEvent): void => {
        const dx = Math.round((ev.clientX - down.clientX) / COL_WIDTH)
        const dy = Math.round((ev.clientY - down.clientY) / canvas.rowHeight)
        const cur = canvas.block(blockId)?.position
        if (cur === undefined) return
        try {
          if (mode === 'move') {
            const x = Math.min(Math.max(0, start.x + dx), canvas.columns - cur.w)
            const y = Math.max(0, start.y + dy)
            if (x !== cur.x || y !== cur.y) canvas.moveBlock(blockId, x, y)
          } else {
            const w = Math.min(Math.max(1, start.w + dx), canvas.columns - cur.x)
            const hh = Math.max(1, start.h + dy)
            if (w !== cur.w || hh !== cur.h) canvas.resizeBlock(blockId, w, hh)
          }
        } catch (err) { error.textContent = message(err) }
        const b = canvas.block(blockId)
        if (b !== undefined) place(el, b)
      }
      const up = (): void => {
        el.classList.remove('dragging')
        handle.removeEventListener('pointermove', move)
        handle.removeEventListener('pointerup', up)
        handle.removeEventListener('pointercancel', up)
        canvas.stopCapturing()
        renderBlock(blockId)
        layoutGrid()
      }
      handle.addEventListener('pointermove', move)
      handle.addEventListener('pointerup', up)
      handle.addEventListener('pointercancel', up)
    })
  }

  canvas.on('blocks', (changes) => {
    for (const c of changes) renderBlock(c.id)
    layoutGrid()
    // someone else's change may come with a version (a restore, an automatic one)
    if (changes.some((c) => !c.local)) refreshVersionsSoon()
  })
  canvas.on('meta', () => { title.textContent = canvas.meta().name || 'Untitled'; layoutGrid() })
  // bound blocks: new data redraws them (a table fetches its page again), a status change too
  canvas.on('data', (data) => {
    const b = canvas.block(data.block_id)
    if (b?.type === 'table' && bindingOf(b) !== null) fetchPage(data.block_id)
    renderBlock(data.block_id)
  })
  canvas.on('data-status', (blockId) => renderBlock(blockId))
  // the results' ages tick on
  const ticker = setInterval(() => {
    if (openCanvas !== canvas) { clearInterval(ticker); return }
    for (const el of grid.querySelectorAll<HTMLElement>('.data-age[data-computed-at]')) {
      const at = el.dataset.computedAt ?? ''
      if (at !== '') el.textContent = age(at)
    }
  }, 1000)
  canvas.on('resync', () => renderAll())
  canvas.on('status', (s) => {
    status.dataset.status = s
    status.textContent = s
    if (s === 'synced') { renderAll(); void loadVersions(); panel.load() }
  })
  const showSave = (n: number): void => {
    if (canvas.connection.permanentError !== null) return
    save.dataset.state = n === 0 ? 'saved' : 'saving'
    save.textContent = n === 0 ? 'Saved' : `${n} unsaved change${n === 1 ? '' : 's'}${canvas.status === 'offline' ? ' (offline)' : ''}`
  }
  canvas.on('save-state', (s) => showSave(s.unsavedChanges))
  canvas.on('refused', (err, refusal) => {
    if (refusal.code === 'read_only') {
      // a viewer: stop offering edits rather than having each one refused
      app.classList.add('read-only')
      error.textContent = 'You can view this canvas but not edit it.'
    } else {
      error.textContent = `${err.message} (your view was reloaded from the server)`
    }
  })
  canvas.on('error', (err) => {
    error.textContent = `Disconnected: ${err.message}`
    save.dataset.state = 'error'
    save.textContent = 'Not connected'
  })

  // --- cursors
  const cursorEls = new Map<number, HTMLElement>()
  const renderPeers = (peers: Peer[]): void => {
    peersEl.replaceChildren(...peers.filter((p) => p.user !== undefined).map((p) =>
      h('span', { class: 'peer', title: p.user?.name ?? '', style: `background:${p.user?.color ?? '#888'}` }, (p.user?.name ?? '?').slice(0, 2).toUpperCase())))
    const seen = new Set<number>()
    for (const p of peers) {
      if (p.cursor == null || p.user === undefined) continue
      seen.add(p.clientId)
      let el = cursorEls.get(p.clientId)
      if (el === undefined) {
        const arrow = svg('svg', { width: 16, height: 20, viewBox: '0 0 16 20' })
        arrow.append(svg('path', { d: 'M1 1 L1 17 L5 13 L8 19 L11 18 L8 12 L14 12 Z', fill: p.user.color, stroke: '#fff', 'stroke-width': 1 }))
        el = h('div', { class: 'peer-cursor', 'data-client': p.clientId }, arrow, h('span', { style: `background:${p.user.color}` }, p.user.name))
        grid.append(el)
        cursorEls.set(p.clientId, el)
      }
      el.style.left = `${p.cursor.x}px`
      el.style.top = `${p.cursor.y}px`
    }
    for (const [cid, el] of cursorEls) if (!seen.has(cid)) { el.remove(); cursorEls.delete(cid) }
    // other people's selections
    for (const [bid, e] of elements) {
      const by = peers.find((p) => p.selection?.includes(bid) === true)
      e.el.style.boxShadow = by?.user !== undefined ? `0 0 0 2px ${by.user.color}` : ''
    }
  }
  canvas.presence.on('change', renderPeers)
  let pending: { x: number, y: number, block: string | null } | null = null
  grid.addEventListener('pointermove', (ev) => {
    const rect = grid.getBoundingClientRect()
    const target = (ev.target as HTMLElement).closest('.block') as HTMLElement | null
    const first = pending === null
    pending = { x: Math.round(ev.clientX - rect.left), y: Math.round(ev.clientY - rect.top), block: target?.dataset.id ?? null }
    if (first) {
      requestAnimationFrame(() => {
        if (pending !== null) canvas.presence.setCursor(pending)
        pending = null
      })
    }
  })
  grid.addEventListener('pointerleave', () => { pending = null; canvas.presence.setCursor(null) })
  grid.addEventListener('pointerdown', (ev) => { if (ev.target === grid) select(null) })

  // --- versions: the server lists them newest first; naming snapshots the live document
  // (after our own edits are durable), a restore is a new change everyone sees live
  const loadVersions = async (): Promise<void> => {
    try {
      const versions: Version[] = await client.listVersions(id)
      versionList.replaceChildren(...versions.map((v) => h('li', { 'data-version': v.version, 'data-kind': v.kind },
        h('span', {}, h('strong', {}, `v${v.version}`), ' ', v.changes, h('br'),
          h('span', { class: 'muted' }, `${v.kind} · ${new Date(v.changed_at).toLocaleString()}`)),
        h('button', { class: 'restore', title: `restore version ${v.version}`, onclick: () => { void restore(v.version) } }, 'Restore'))))
    } catch (err) {
      versionList.replaceChildren(h('li', { class: 'muted' }, message(err)))
    }
  }
  let refreshTimer: ReturnType<typeof setTimeout> | null = null
  const refreshVersionsSoon = (): void => {
    if (refreshTimer !== null) return
    refreshTimer = setTimeout(() => { refreshTimer = null; if (openCanvas === canvas) void loadVersions() }, 1000)
  }
  const nameVersion = async (): Promise<void> => {
    try {
      await canvas.whenSaved()
      const v = await client.createVersion(id, value('version-name') || 'Named version')
      ;(byId('version-name') as HTMLInputElement).value = ''
      versionResult.textContent = `saved as v${v.version}`
      await loadVersions()
    } catch (err) { error.textContent = message(err) }
  }
  const restore = async (version: number): Promise<void> => {
    try {
      await canvas.whenSaved()
      const res = await client.restoreVersion(id, version)
      versionResult.textContent = `restored v${version} as v${res.version.version}`
      await loadVersions()
    } catch (err) { error.textContent = message(err) }
  }

  layoutGrid()
  renderAll()
  showSave(canvas.unsavedChanges)
}

// ---- block bodies -------------------------------------------------------------------

/** Binds a textarea to a Y.Text both ways; local caret positions follow remote edits. */
function bindText (body: HTMLElement, text: Y.Text): () => void {
  const area = h('textarea', { placeholder: 'Write here…' })
  area.value = text.toString()
  body.append(area)
  let last = area.value
  let typing = false
  area.addEventListener('input', () => {
    const next = area.value
    let start = 0
    while (start < last.length && start < next.length && last[start] === next[start]) start++
    let endOld = last.length
    let endNew = next.length
    while (endOld > start && endNew > start && last[endOld - 1] === next[endNew - 1]) { endOld--; endNew-- }
    const apply = (): void => {
      if (endOld > start) text.delete(start, endOld - start)
      if (endNew > start) text.insert(start, next.slice(start, endNew))
    }
    // origin null: the SDK's undo manager tracks it (undo/redo then reach the textarea
    // through the observer below, like remote edits)
    typing = true
    try {
      if (text.doc !== null) text.doc.transact(apply)
      else apply()
    } finally {
      typing = false
    }
    last = next
  })
  const observer = (event: Y.YTextEvent): void => {
    if (typing) return
    let selStart = area.selectionStart
    let selEnd = area.selectionEnd
    let index = 0
    for (const op of event.delta) {
      if (op.retain !== undefined) index += op.retain
      else if (typeof op.insert === 'string') {
        const n = op.insert.length
        if (selStart >= index) selStart += n
        if (selEnd >= index) selEnd += n
        index += n
      } else if (op.delete !== undefined) {
        const n = op.delete
        if (selStart > index) selStart = Math.max(index, selStart - n)
        if (selEnd > index) selEnd = Math.max(index, selEnd - n)
      }
    }
    last = text.toString()
    area.value = last
    if (document.activeElement === area) area.setSelectionRange(selStart, selEnd)
  }
  text.observe(observer)
  return () => text.unobserve(observer)
}

interface Column { field: string, header: string }

function renderTable (canvas: Canvas, b: Block): Array<Node | string> {
  const columns = (Array.isArray(b.content.columns) ? b.content.columns : []) as Column[]
  const rows = (Array.isArray(b.content.rows) ? b.content.rows : []) as Array<Record<string, unknown>>
  const setCell = (r: number, field: string, raw: string): void => {
    const next = rows.map((row) => ({ ...row }))
    const num = Number(raw)
    const cell = next[r]
    if (cell === undefined) return
    cell[field] = raw !== '' && Number.isFinite(num) ? num : raw
    canvas.setContent(b.id, 'rows', next)
  }
  const table = h('table', {},
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', {}, c.header)))),
    h('tbody', {}, ...rows.map((row, r) => h('tr', {}, ...columns.map((c) => {
      const input = h('input', { value: String(row[c.field] ?? '') })
      input.addEventListener('change', () => setCell(r, c.field, input.value))
      return h('td', {}, input)
    })))))
  const addRow = h('button', {
    onclick: () => canvas.setContent(b.id, 'rows', [...rows, Object.fromEntries(columns.map((c) => [c.field, '']))])
  }, '+ row')
  return [typeof b.content.title === 'string' ? h('div', { class: 'chart-title' }, b.content.title) : '', table, addRow]
}

function renderChart (canvas: Canvas, b: Block): Array<Node | string> {
  // points come from `rows` keyed by config.x_axis / y_axis, or (templates) `data` of {label, value}
  const config = (b.content.config ?? {}) as { x_axis?: string, y_axis?: string }
  const field = !Array.isArray(b.content.rows) && Array.isArray(b.content.data) ? 'data' : 'rows'
  const xKey = field === 'data' ? 'label' : config.x_axis ?? 'label'
  const yKey = field === 'data' ? 'value' : config.y_axis ?? 'value'
  const source = b.content[field]
  const rows = (Array.isArray(source) ? source : []) as Array<Record<string, unknown>>
  const colors = ((b.content.style as { colors?: string[] } | undefined)?.colors) ?? ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728']
  const points = rows.map((r) => ({ label: String(r[xKey] ?? ''), value: Number(r[yKey] ?? 0) || 0 }))
  const W = 300
  const H = 150
  const max = Math.max(1, ...points.map((p) => p.value))
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H + 20}`, role: 'img' })
  chart.append(svg('line', { x1: 0, y1: H, x2: W, y2: H, stroke: '#8a93a8' }))
  const band = W / Math.max(1, points.length)
  points.forEach((p, i) => {
    const barH = (p.value / max) * (H - 10)
    chart.append(svg('rect', { x: i * band + band * 0.15, y: H - barH, width: band * 0.7, height: barH, fill: colors[i % colors.length] ?? '#1f77b4' }))
    const label = svg('text', { x: i * band + band / 2, y: H + 14, 'text-anchor': 'middle', 'font-size': 11, fill: '#505a70' })
    label.textContent = p.label
    chart.append(label)
    const v = svg('text', { x: i * band + band / 2, y: H - barH - 3, 'text-anchor': 'middle', 'font-size': 10, fill: '#1d2330' })
    v.textContent = String(p.value)
    chart.append(v)
  })
  const data = h('input', { class: 'chart-data', title: 'data: label=value, ...', value: points.map((p) => `${p.label}=${p.value}`).join(', ') })
  data.addEventListener('change', () => {
    const next = data.value.split(',').map((s) => s.split('=')).filter((kv) => kv.length === 2)
      .map(([k, v]) => ({ [xKey]: (k ?? '').trim(), [yKey]: Number((v ?? '').trim()) || 0 }))
    canvas.setContent(b.id, field, next)
  })
  return [h('div', { class: 'chart-title' }, typeof b.content.title === 'string' ? b.content.title : 'Chart'), chart, data]
}

void route()
