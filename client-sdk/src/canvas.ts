/**
 * `Canvas`: one open canvas, a typed API over its Yjs document (the schema of docs/DOCUMENT.md).
 *
 * Roots: `meta` (name, description, project_id, owner_id, tags), `layout` (type, columns,
 * rowHeight, breakpoints), `blocks` (block id -> block map) and `sharing` (visibility,
 * permissions, public_link, embed_settings). A block map holds `id`, `type`, `position`
 * (map x, y, w, h: integers, `0 <= x`, `x + w <= columns`), `content` (map; a narrative
 * block's `text` is a `Y.Text`, `data_bindings` a `Y.Array`) and `metadata`, which only the
 * server writes (attribution): new blocks get an empty `metadata` map.
 *
 * Every edit is one transaction with the origin {@link LOCAL_ORIGIN}; the undo manager
 * tracks that origin (and direct edits of a `Y.Text`, whose origin is `null`), never the
 * server's, so undo and redo only ever revert the local user's own edits.
 */

import * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import { CanvasConnection, type ConnectionOptions, type Refusal } from './connection.js'
import { CanvasError, invalidArgument } from './errors.js'
import { Emitter } from './events.js'
import { Presence } from './presence.js'
import { ConnectionStatus, type SaveState } from './status.js'
import { answersBinding, bindingsIn, renderNarrative } from './bound.js'
import type { RestClient } from './rest.js'
import type { BlockData, BlockDataPage, BlockDataRequest } from './types.js'

/** Transaction origin of every edit made through this SDK. */
export const LOCAL_ORIGIN: unique symbol = Symbol('canvas-sdk local edit')

/** Built-in block types (others are allowed). */
export type BlockType = 'chart' | 'narrative' | 'table' | (string & {})

/** A block's place on the grid: columns `x`, `w`; rows `y`, `h`. */
export interface BlockPosition {
  x: number
  y: number
  w: number
  h: number
}

/** Attribution the server writes into each block. */
export interface BlockMetadata {
  created_by?: string
  created_at?: string
  last_modified_by?: string
  last_modified_at?: string
}

/** A block as plain data (a snapshot; a narrative block's text is a string here). */
export interface Block {
  id: string
  type: BlockType
  position: BlockPosition
  content: Record<string, unknown>
  metadata: BlockMetadata
}

/** What {@link Canvas.addBlock} takes. */
export interface NewBlock {
  /** The block id; a random `block_...` id when omitted. */
  id?: string
  /** The block type. */
  type: BlockType
  /** Where it goes (must fit the grid). */
  position: BlockPosition
  /** Its content; for a narrative block, `text` (a string) becomes a `Y.Text`. */
  content?: Record<string, unknown>
}

/** A user's grant on the canvas. */
export interface SharingGrant {
  user_id: string
  role: string
  granted_at?: string
  granted_by?: string
}

/** The canvas's sharing settings, as the document holds them. */
export interface SharingSettings {
  visibility: 'private' | 'team' | 'public' | (string & {})
  permissions: SharingGrant[]
  /** The public link's id (not its token, which only admins read through `getSharing`). */
  public_link: string | null
  embed_settings: { enabled: boolean, allowed_domains: string[] }
}

/** The canvas's descriptive fields (root `meta`). */
export interface CanvasMeta {
  name: string
  description: string | null
  project_id: string | null
  owner_id: string | null
  tags: string[]
}

/** How a block changed. */
export interface BlockChange {
  /** The block. */
  id: string
  /** Added, changed (position, content, ...) or removed. */
  kind: 'added' | 'updated' | 'removed'
  /** Whether this client made the change. */
  local: boolean
}

/** Events of a {@link Canvas}. */
export type CanvasEvents = {
  /** Connection status changed. */
  status: [status: ConnectionStatus]
  /** The number of unsaved local changes changed. */
  'save-state': [state: SaveState]
  /** Every local change is durable on the server. */
  saved: []
  /** Blocks changed (one event per transaction). */
  blocks: [changes: BlockChange[]]
  /** The sharing settings changed. */
  sharing: [sharing: SharingSettings]
  /** `meta` or `layout` changed. */
  meta: []
  /** The server refused one of our updates; the canvas resyncs from the server. */
  refused: [error: CanvasError, refusal: Refusal]
  /** The document was replaced by the server's (after a refusal): re-read blocks, re-bind texts. */
  resync: [doc: Y.Doc]
  /** The connection stopped for good (4401, 4403, 4404, ...). */
  error: [error: CanvasError]
  /** A bound block's data arrived (message 102): its result, or why there is none. */
  data: [data: BlockData]
  /** A bound block's data status changed (see {@link Canvas.dataStatus}). */
  'data-status': [blockId: string, status: DataStatus]
}

/**
 * Where a bound block's data stands, as this client knows it: `pending` from the moment its
 * binding (query or parameters) is new or changed, in this client or another, until its
 * data arrives; `running` while an execution for it runs (this client's
 * {@link Canvas.refresh}, or any run the server started: another user's refresh, a changed
 * parameter, a source refresh; the data shown stays until the new data arrives); then the status
 * of the data that arrived: `completed`, `failed` (the query failed to run) or `error` (the
 * binding is unusable), with `error`.
 */
export interface DataStatus {
  state: 'pending' | 'running' | 'completed' | 'failed' | 'error'
  /** Why there is no data (`failed` and `error`). */
  error: { code: string, message: string } | null
  /** The execution of the data shown, if any. */
  execution_id: string | null
  /** When the data shown was computed (RFC 3339), if there is any. */
  computed_at: string | null
  /** Whether the data shown came from the server's result cache. */
  from_cache: boolean
}

/** Options of {@link Canvas}, beyond the connection's. */
export type CanvasOptions = ConnectionOptions & {
  /** Undo steps closer together than this many milliseconds merge into one (default 500). */
  undoCaptureTimeoutMs?: number
  /** The REST client for {@link Canvas.refresh} and {@link Canvas.blockDataPage} (`openCanvas` passes its own). */
  rest?: RestClient
}

/** Block types whose content may bind a saved query. */
const BINDABLE = new Set(['chart', 'table'])

const DEFAULT_COLUMNS = 12
const DEFAULT_ROW_HEIGHT = 50

function randomId (): string {
  const bytes = new Uint8Array(8)
  globalThis.crypto.getRandomValues(bytes)
  return 'block_' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function numberAt (map: Y.Map<unknown> | undefined, key: string, fallback: number): number {
  const v = map?.get(key)
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback
}

function stringAt (map: Y.Map<unknown> | undefined, key: string): string | null {
  const v = map?.get(key)
  return typeof v === 'string' ? v : null
}

function mapAt (map: Y.Map<unknown> | undefined, key: string): Y.Map<unknown> | undefined {
  const v = map?.get(key)
  return v instanceof Y.Map ? v as Y.Map<unknown> : undefined
}

function toPlain (value: unknown): unknown {
  if (value instanceof Y.AbstractType) return value.toJSON() as unknown
  return value
}

/** An open canvas: typed blocks, presence, status, save state, undo/redo. */
export class Canvas extends Emitter<CanvasEvents> {
  /** The canvas id. */
  readonly id: string
  /** Presence of the people with this canvas open. */
  readonly presence: Presence
  /** The connection (status, save state, reconnects). */
  readonly connection: CanvasConnection

  private undoManager: Y.UndoManager
  private readonly captureTimeout: number
  private unobserve: () => void = () => {}
  private isClosed = false
  private readonly rest: RestClient | undefined
  /** The latest data (message 102) per bound block. */
  private readonly data = new Map<string, BlockData>()
  /** The `running` message of an execution under way per block (until its data arrives). */
  private readonly running = new Map<string, BlockData>()
  /** The status per bound block. */
  private readonly statuses = new Map<string, DataStatus>()
  /** Each bound block's binding as last seen (`data_source` as JSON), to notice changes. */
  private readonly bindings = new Map<string, string>()

  /** Opens a canvas (usually through `CanvasClient.openCanvas`). */
  constructor (options: CanvasOptions) {
    super()
    this.id = options.canvasId
    this.captureTimeout = options.undoCaptureTimeoutMs ?? 500
    this.connection = new CanvasConnection(options)
    this.presence = new Presence(this.connection.awareness)
    this.undoManager = this.makeUndoManager(this.connection.doc)
    this.observe(this.connection.doc)
    this.connection.on('status', (s) => this.emit('status', s))
    this.connection.on('save-state', (s) => this.emit('save-state', s))
    this.connection.on('saved', () => this.emit('saved'))
    this.connection.on('error', (e) => this.emit('error', e))
    this.connection.on('refused', (refusal, error) => this.emit('refused', error, refusal))
    this.connection.on('resync', (doc, awareness) => this.rebind(doc, awareness))
    this.connection.on('block-data', (data) => this.receiveData(data))
    this.rest = options.rest
    this.connection.connect()
  }

  /** The current Yjs document (replaced after a resync: listen to `resync`). */
  get doc (): Y.Doc {
    return this.connection.doc
  }

  /** Connection status. */
  get status (): ConnectionStatus {
    return this.connection.status
  }

  /** Local changes not yet durable on the server. */
  get unsavedChanges (): number {
    return this.connection.unsavedChanges
  }

  /** Resolves once the canvas is synced with the server (at once if it is). */
  whenSynced (): Promise<void> {
    return this.until(() => this.status === ConnectionStatus.Synced, 'status')
  }

  /** Resolves once every local change so far is durable on the server. */
  whenSaved (): Promise<void> {
    return this.until(() => this.unsavedChanges === 0, 'save-state')
  }

  private until (done: () => boolean, event: 'status' | 'save-state'): Promise<void> {
    return new Promise((resolve, reject) => {
      if (done()) { resolve(); return }
      if (this.connection.permanentError !== null) { reject(this.connection.permanentError); return }
      const offs: Array<() => void> = []
      const finish = (err?: CanvasError): void => {
        offs.forEach((off) => off())
        if (err === undefined) resolve()
        else reject(err)
      }
      offs.push(this.on(event, () => { if (done()) finish() }))
      offs.push(this.on('error', (e) => finish(e)))
    })
  }

  /** Closes the connection; the canvas cannot be used afterwards. */
  close (): void {
    if (this.isClosed) return
    this.isClosed = true
    this.unobserve()
    this.undoManager.destroy()
    this.presence.destroy()
    this.connection.close()
    this.clear()
  }

  // ---- reading -------------------------------------------------------------------------

  private get blocksRoot (): Y.Map<Y.Map<unknown>> {
    return this.doc.getMap('blocks')
  }

  /** The grid's column count (`layout.columns`, 12 by default). */
  get columns (): number {
    return numberAt(this.doc.getMap('layout'), 'columns', DEFAULT_COLUMNS)
  }

  /** The grid's row height in pixels (`layout.rowHeight`, 50 by default). */
  get rowHeight (): number {
    return numberAt(this.doc.getMap('layout'), 'rowHeight', DEFAULT_ROW_HEIGHT)
  }

  /** The canvas's name, description, project, owner and tags. */
  meta (): CanvasMeta {
    const meta = this.doc.getMap<unknown>('meta')
    const tags = meta.get('tags')
    return {
      name: stringAt(meta, 'name') ?? '',
      description: stringAt(meta, 'description'),
      project_id: stringAt(meta, 'project_id'),
      owner_id: stringAt(meta, 'owner_id'),
      tags: tags instanceof Y.Array ? tags.toArray().filter((t): t is string => typeof t === 'string') : []
    }
  }

  /** Every block, ordered by row, column, then id (as the server's JSON lists them). */
  blocks (): Block[] {
    const out: Block[] = []
    for (const id of this.blocksRoot.keys()) {
      const block = this.block(id)
      if (block !== undefined) out.push(block)
    }
    return out.sort((a, b) => a.position.y - b.position.y || a.position.x - b.position.x ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** One block, or `undefined` if there is none with this id. */
  block (id: string): Block | undefined {
    const map = this.blocksRoot.get(id)
    if (!(map instanceof Y.Map)) return undefined
    const position = mapAt(map, 'position')
    const content: Record<string, unknown> = {}
    mapAt(map, 'content')?.forEach((v, k) => { content[k] = toPlain(v) })
    return {
      id,
      type: stringAt(map, 'type') ?? '',
      position: {
        x: numberAt(position, 'x', 0),
        y: numberAt(position, 'y', 0),
        w: numberAt(position, 'w', 1),
        h: numberAt(position, 'h', 1)
      },
      content,
      metadata: (mapAt(map, 'metadata')?.toJSON() ?? {}) as BlockMetadata
    }
  }

  /** A narrative block's shared text, to bind to an editor (re-fetch it after `resync`). */
  text (id: string): Y.Text {
    const map = this.blocksRoot.get(id)
    if (!(map instanceof Y.Map)) throw invalidArgument(`no block ${JSON.stringify(id)}`)
    const text = mapAt(map, 'content')?.get('text')
    if (!(text instanceof Y.Text)) throw invalidArgument(`block ${JSON.stringify(id)} has no shared text`)
    return text
  }

  /** The sharing settings (changed through the REST API's sharing endpoints). */
  sharing (): SharingSettings {
    const sharing = this.doc.getMap<unknown>('sharing')
    const permissions: SharingGrant[] = []
    mapAt(sharing, 'permissions')?.forEach((grant, userId) => {
      if (grant instanceof Y.Map) {
        const g = grant.toJSON() as Record<string, unknown>
        permissions.push({
          user_id: userId,
          role: typeof g.role === 'string' ? g.role : 'viewer',
          ...(typeof g.granted_at === 'string' ? { granted_at: g.granted_at } : {}),
          ...(typeof g.granted_by === 'string' ? { granted_by: g.granted_by } : {})
        })
      }
    })
    const embed = mapAt(sharing, 'embed_settings')
    const domains = embed?.get('allowed_domains')
    return {
      visibility: stringAt(sharing, 'visibility') ?? 'private',
      permissions: permissions.sort((a, b) => (a.user_id < b.user_id ? -1 : 1)),
      public_link: stringAt(sharing, 'public_link'),
      embed_settings: {
        enabled: embed?.get('enabled') === true,
        allowed_domains: Array.isArray(domains)
          ? domains.filter((d): d is string => typeof d === 'string')
          : domains instanceof Y.Array ? domains.toArray().filter((d): d is string => typeof d === 'string') : []
      }
    }
  }

  // ---- editing -------------------------------------------------------------------------

  private checkPosition (p: BlockPosition): void {
    const columns = this.columns
    for (const key of ['x', 'y', 'w', 'h'] as const) {
      if (!Number.isSafeInteger(p[key])) throw invalidArgument(`position.${key} must be an integer, got ${String(p[key])}`)
    }
    if (p.x < 0 || p.y < 0 || p.w < 1 || p.h < 1 || p.x + p.w > columns || p.y + p.h > 0x7fffffff) {
      throw invalidArgument(`position x=${p.x} y=${p.y} w=${p.w} h=${p.h} is outside the ${columns}-column grid`)
    }
  }

  private blockMap (id: string): Y.Map<unknown> {
    this.ensureOpen()
    const map = this.blocksRoot.get(id)
    if (!(map instanceof Y.Map)) throw invalidArgument(`no block ${JSON.stringify(id)}`)
    return map
  }

  private ensureOpen (): void {
    if (this.isClosed) throw new CanvasError({ code: 'closed', source: 'local' }, 'the canvas is closed')
  }

  private transact (fn: () => void): void {
    this.doc.transact(fn, LOCAL_ORIGIN)
  }

  /** Adds a block in one transaction (complete: id, type, position, content, empty metadata); returns its id. */
  addBlock (block: NewBlock): string {
    this.ensureOpen()
    const id = block.id ?? randomId()
    if (id === '') throw invalidArgument('block id must not be empty')
    if (block.type === '') throw invalidArgument('block type must not be empty')
    if (this.blocksRoot.has(id)) throw invalidArgument(`block ${JSON.stringify(id)} already exists`)
    this.checkPosition(block.position)
    const content = block.content ?? {}
    if (block.type === 'narrative' && content.text !== undefined && typeof content.text !== 'string') {
      throw invalidArgument('narrative text must be a string')
    }
    if (content.data_bindings !== undefined && !Array.isArray(content.data_bindings)) {
      throw invalidArgument('data_bindings must be an array')
    }
    this.transact(() => {
      const map = new Y.Map<unknown>()
      this.blocksRoot.set(id, map)
      map.set('id', id)
      map.set('type', block.type)
      const { x, y, w, h } = block.position
      map.set('position', new Y.Map<unknown>([['x', x], ['y', y], ['w', w], ['h', h]]))
      const contentMap = new Y.Map<unknown>()
      map.set('content', contentMap)
      for (const [key, value] of Object.entries(content)) {
        contentMap.set(key, this.contentValue(block.type, key, value))
      }
      if (block.type === 'narrative' && content.text === undefined) contentMap.set('text', new Y.Text())
      map.set('metadata', new Y.Map<unknown>())
    })
    return id
  }

  private contentValue (type: string, key: string, value: unknown): unknown {
    if (type === 'narrative' && key === 'text') return new Y.Text(String(value))
    if (key === 'data_bindings' && Array.isArray(value)) return Y.Array.from(value as Array<Record<string, unknown>>)
    return value
  }

  private setPosition (id: string, change: (p: BlockPosition) => BlockPosition): void {
    const map = this.blockMap(id)
    const current = this.block(id)?.position
    const pos = mapAt(map, 'position')
    if (current === undefined || pos === undefined) throw invalidArgument(`block ${JSON.stringify(id)} has no position`)
    const next = change(current)
    this.checkPosition(next)
    const keys = (['x', 'y', 'w', 'h'] as const).filter((k) => next[k] !== current[k])
    if (keys.length === 0) return
    this.transact(() => { for (const k of keys) pos.set(k, next[k]) })
  }

  /** Moves a block to column `x`, row `y` (writes only the coordinates that change). */
  moveBlock (id: string, x: number, y: number): void {
    this.setPosition(id, (p) => ({ ...p, x, y }))
  }

  /** Resizes a block to `w` columns by `h` rows. */
  resizeBlock (id: string, w: number, h: number): void {
    this.setPosition(id, (p) => ({ ...p, w, h }))
  }

  /** Removes a block. */
  removeBlock (id: string): void {
    this.blockMap(id)
    this.transact(() => this.blocksRoot.delete(id))
  }

  /** Sets one content key to a JSON value (not a narrative block's `text`: edit that as `Y.Text`). */
  setContent (id: string, key: string, value: unknown): void {
    const map = this.blockMap(id)
    const type = stringAt(map, 'type') ?? ''
    if (type === 'narrative' && key === 'text') throw invalidArgument('narrative text is edited through text(id)')
    if (key === 'data_bindings' && !Array.isArray(value)) throw invalidArgument('data_bindings must be an array')
    this.transact(() => {
      let content = mapAt(map, 'content')
      if (content === undefined) {
        content = new Y.Map<unknown>()
        map.set('content', content)
      }
      content.set(key, this.contentValue(type, key, value))
    })
  }

  /** Inserts text into a narrative block at `index` (UTF-16 units). */
  insertText (id: string, index: number, text: string): void {
    const ytext = this.text(id)
    if (!Number.isInteger(index) || index < 0 || index > ytext.length) throw invalidArgument(`index ${index} is outside the text`)
    this.transact(() => ytext.insert(index, text))
  }

  /** Deletes `length` units from a narrative block's text at `index`. */
  deleteText (id: string, index: number, length: number): void {
    const ytext = this.text(id)
    if (!Number.isInteger(index) || !Number.isInteger(length) || index < 0 || length < 0 || index + length > ytext.length) {
      throw invalidArgument(`range ${index}+${length} is outside the text`)
    }
    this.transact(() => ytext.delete(index, length))
  }

  /** Runs several edits as one transaction (one update, one undo step). */
  batch (fn: () => void): void {
    this.ensureOpen()
    this.transact(fn)
  }

  // ---- undo ----------------------------------------------------------------------------

  private makeUndoManager (doc: Y.Doc): Y.UndoManager {
    return new Y.UndoManager([doc.getMap('blocks'), doc.getMap('meta'), doc.getMap('layout')], {
      trackedOrigins: new Set<unknown>([LOCAL_ORIGIN, null]),
      captureTimeout: this.captureTimeout
    })
  }

  /** Reverts the local user's last edit (never anyone else's); false if there was none. */
  undo (): boolean {
    this.ensureOpen()
    return this.undoManager.undo() !== null
  }

  /** Re-applies the last undone edit; false if there was none. */
  redo (): boolean {
    this.ensureOpen()
    return this.undoManager.redo() !== null
  }

  /** Whether {@link undo} would do something. */
  canUndo (): boolean {
    return this.undoManager.canUndo()
  }

  /** Whether {@link redo} would do something. */
  canRedo (): boolean {
    return this.undoManager.canRedo()
  }

  /** Makes the next edit a new undo step even if it follows quickly. */
  stopCapturing (): void {
    this.undoManager.stopCapturing()
  }

  // ---- blocks bound to live data -------------------------------------------------------

  /** The latest data of a bound chart or table (message 102), or undefined before any arrived. */
  blockData (id: string): BlockData | undefined {
    return this.data.get(id)
  }

  /** Where a bound block's data stands (see {@link DataStatus}); null for a block that is not bound. */
  dataStatus (id: string): DataStatus | null {
    return this.statuses.get(id) ?? null
  }

  /**
   * A narrative block's text with each `{{key}}` replaced by its binding's value (as the
   * server renders `content.rendered_text`); placeholders without a value stay.
   */
  renderedText (id: string): string {
    const block = this.block(id)
    if (block === undefined) throw invalidArgument(`no block ${JSON.stringify(id)}`)
    const text = block.content.text
    return renderNarrative(typeof text === 'string' ? text : '', bindingsIn(block.content))
  }

  private restClient (): RestClient {
    if (this.rest === undefined) {
      throw new CanvasError({ code: 'invalid_argument', source: 'local' },
        'this canvas has no REST client: open it with CanvasClient.openCanvas')
    }
    return this.rest
  }

  /**
   * Runs a bound block's query again past the result cache (editors and up): the status is
   * `running` meanwhile, and every client of the canvas gets the new data as a `data` event.
   * Answers the new data; a refusal (a viewer's 403, `not_bound`, ...) throws and leaves the
   * status as it was.
   */
  async refresh (id: string): Promise<BlockData> {
    const rest = this.restClient()
    const before = this.statuses.get(id)
    this.setStatus(id, { ...(before ?? this.emptyStatus()), state: 'running', error: null })
    try {
      const data = await rest.refreshBlock(this.id, id)
      this.receiveData(data)
      return data
    } catch (err) {
      const now = this.statuses.get(id)
      if (now?.state === 'running') {
        if (before === undefined) this.forgetStatus(id)
        else this.setStatus(id, before)
      }
      throw err
    }
  }

  /** A page of a bound table (`page` from 1, `sort` `field` / `-field`, `filter`), or a chart's data with `series`, over REST. */
  async blockDataPage (id: string, request: BlockDataRequest = {}): Promise<BlockDataPage> {
    return await this.restClient().blockData(this.id, id, request)
  }

  private emptyStatus (): DataStatus {
    return { state: 'pending', error: null, execution_id: null, computed_at: null, from_cache: false }
  }

  private setStatus (id: string, status: DataStatus): void {
    const before = this.statuses.get(id)
    if (before !== undefined && JSON.stringify(before) === JSON.stringify(status)) return
    this.statuses.set(id, status)
    this.emit('data-status', id, status)
  }

  private forgetStatus (id: string): void {
    this.statuses.delete(id)
  }

  private receiveData (data: BlockData): void {
    if (data.status === 'running') {
      // an execution started: the data shown stays until its result arrives
      this.running.set(data.block_id, data)
      const before = this.statuses.get(data.block_id)
      this.setStatus(data.block_id, { ...(before ?? this.emptyStatus()), state: 'running', error: null })
      return
    }
    this.running.delete(data.block_id)
    const held = this.data.get(data.block_id)
    // the REST answer of a refresh and its message 102 carry the same data: one event
    if (held !== undefined && held.execution_id === data.execution_id && held.status === data.status &&
      held.computed_at === data.computed_at && JSON.stringify(held.series) === JSON.stringify(data.series) &&
      held.total_rows === data.total_rows && held.columns.length === data.columns.length) {
      return
    }
    this.data.set(data.block_id, data)
    const state = data.status === 'completed' ? 'completed' : data.status === 'failed' ? 'failed' : 'error'
    this.setStatus(data.block_id, {
      state,
      error: data.error ?? null,
      execution_id: data.execution_id,
      computed_at: data.computed_at,
      from_cache: data.from_cache
    })
    this.emit('data', data)
  }

  /** Notices new, changed and removed bindings among `ids` (after a document change). */
  private bindingsChanged (ids: Iterable<string>): void {
    for (const id of ids) {
      const map = this.blocksRoot.get(id)
      const type = map instanceof Y.Map ? stringAt(map, 'type') : null
      const source = map instanceof Y.Map ? toPlain(mapAt(map, 'content')?.get('data_source')) : undefined
      const bound = type !== null && BINDABLE.has(type) && typeof source === 'object' && source !== null &&
        (source as { type?: unknown }).type === 'query'
      if (!bound) {
        if (this.bindings.delete(id)) {
          this.data.delete(id)
          this.running.delete(id)
          this.forgetStatus(id)
        }
        continue
      }
      const key = JSON.stringify(source)
      const before = this.bindings.get(id)
      if (before === key) continue
      this.bindings.set(id, key)
      // a new binding (or the first sight of one) waits for its data, unless that is here
      // already (message 102 can arrive before the edit that made the binding)
      const held = this.data.get(id)
      const unusable = typeof (source as { query_id?: unknown }).query_id !== 'string'
      const answered = held !== undefined && (held.binding !== undefined
        ? answersBinding(held, source)
        : before === undefined || (unusable && held.error?.code === 'invalid_binding'))
      // (an execution for the new binding may have been announced before the edit came)
      const run = this.running.get(id)
      const running = run !== undefined && answersBinding(run, source)
      if (!answered && !running) {
        const status = this.statuses.get(id)
        this.setStatus(id, { ...(status ?? this.emptyStatus()), state: 'pending', error: null })
      }
    }
  }

  // ---- events --------------------------------------------------------------------------

  /** Calls `listener` whenever block `id` changes; returns a function that stops it. */
  onBlock (id: string, listener: (change: BlockChange) => void): () => void {
    return this.on('blocks', (changes) => {
      for (const change of changes) if (change.id === id) listener(change)
    })
  }

  private observe (doc: Y.Doc): void {
    const blocks = doc.getMap('blocks')
    const onBlocks = (events: Array<Y.YEvent<Y.AbstractType<unknown>>>, txn: Y.Transaction): void => {
      const local = txn.origin !== this.connection
      const changes = new Map<string, BlockChange['kind']>()
      for (const event of events) {
        if (event.path.length === 0) {
          event.changes.keys.forEach((change, key) => {
            const kind = change.action === 'add' ? 'added' : change.action === 'delete' ? 'removed' : 'updated'
            changes.set(key, kind)
          })
        } else {
          const id = String(event.path[0])
          if (!changes.has(id)) changes.set(id, 'updated')
        }
      }
      if (changes.size > 0) {
        this.bindingsChanged(changes.keys())
        this.emit('blocks', [...changes].map(([id, kind]) => ({ id, kind, local })))
      }
    }
    const sharing = doc.getMap('sharing')
    const onSharing = (): void => this.emit('sharing', this.sharing())
    const meta = doc.getMap('meta')
    const layout = doc.getMap('layout')
    const onMeta = (): void => this.emit('meta')
    blocks.observeDeep(onBlocks)
    sharing.observeDeep(onSharing)
    meta.observeDeep(onMeta)
    layout.observeDeep(onMeta)
    this.unobserve = () => {
      blocks.unobserveDeep(onBlocks)
      sharing.unobserveDeep(onSharing)
      meta.unobserveDeep(onMeta)
      layout.unobserveDeep(onMeta)
    }
  }

  private rebind (doc: Y.Doc, awareness: Awareness): void {
    this.unobserve()
    this.undoManager.destroy()
    this.undoManager = this.makeUndoManager(doc)
    this.observe(doc)
    this.presence.rebind(awareness)
    this.bindingsChanged([...this.bindings.keys(), ...this.blocksRoot.keys()])
    this.emit('resync', doc)
  }
}
