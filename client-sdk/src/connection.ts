/**
 * The live connection of one canvas: our own implementation of the y-websocket protocol
 * (over `y-protocols` and `lib0`) plus the server's extension messages.
 *
 * Why not y-websocket's `WebsocketProvider`: the SDK needs to count every document message
 * it sends (acknowledgements are by message number), to hold back incremental updates until
 * its sync step 2 has gone out on a fresh socket (the server refuses an update whose
 * dependencies it has not seen), to tell permanent close codes from transient ones with a
 * typed error, and to replace the document after a refused update. The wire format is the
 * standard one, so any other Yjs binding shares the document.
 *
 * Protocol, per socket (`ws://HOST/ws/{canvas}?token=...&acks=1`):
 * 1. on open, send sync step 1 (our state vector) and our awareness state, if any;
 * 2. the server sends its step 1: answer with step 2 (everything it lacks, including edits
 *    made while offline); only from then on are local updates sent as they happen;
 * 3. the server's step 2 makes the status `synced`;
 * 4. message 100 `{through}` acknowledges our first `through` document messages as durable;
 *    message 101 `{code, message, seq}` says one was refused: the SDK reports it, drops its
 *    document and resyncs a fresh one from the server (a refused update leaves a gap in this
 *    client's clock, so none of its later updates could be accepted).
 *
 * Reconnects use exponential backoff with full jitter. Close codes 4400, 4401, 4403, 4404
 * and 4413 are permanent: the connection stops and reports a {@link CanvasError} (4401 first
 * asks the token-refresh hook, once, for a new token). A socket that hears nothing for
 * `idleTimeoutMs` is considered dead (the server echoes the 15-second awareness renewals).
 */

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { decode as decodeMsgpack } from '@msgpack/msgpack'
import { CanvasError, closeError, type RefusalCode } from './errors.js'
import { Emitter } from './events.js'
import { ConnectionStatus, SaveTracker, type SaveState } from './status.js'
import { blockDataFrom } from './bound.js'
import type { BlockData } from './types.js'

/** y-websocket message type: sync (step 1, step 2, update). */
export const MESSAGE_SYNC = 0
/** y-websocket message type: awareness update. */
export const MESSAGE_AWARENESS = 1
/** y-websocket message type: auth (only "permission denied" is meaningful). */
export const MESSAGE_AUTH = 2
/** y-websocket message type: query awareness. */
export const MESSAGE_QUERY_AWARENESS = 3
/** Extension: durable acknowledgement, MessagePack `{through}`. */
export const MESSAGE_ACK = 100
/** Extension: typed error about one update, MessagePack `{code, message, seq}`. */
export const MESSAGE_ERROR = 101
/**
 * Extension: a bound block's data, MessagePack `{block_id, status, execution_id, columns,
 * rows, total_rows, computed_at, from_cache, series?, error?}` (README "Blocks bound to live data").
 */
export const MESSAGE_BLOCK_DATA = 102

/** The part of the WebSocket API the SDK uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  send: (data: Uint8Array) => void
  close: (code?: number, reason?: string) => void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** A refused update, as the server reported it. */
export interface Refusal {
  /** Why: `read_only`, `forbidden`, `invalid_schema`, `missing_dependency`, ... */
  code: RefusalCode
  /** The server's explanation. */
  message: string
  /** The refused message's number on its connection. */
  seq: number | null
}

/** Credentials for one connection attempt. */
export interface ConnectionCredentials {
  /** A session token (`?token=`). */
  token?: string | null
  /** A public link token (`?link=`), for read-only anonymous access. */
  link?: string | null
}

/** Reconnect timing. */
export interface BackoffOptions {
  /** First delay, in milliseconds (default 250). */
  initialMs?: number
  /** Largest delay, in milliseconds (default 10000). */
  maxMs?: number
}

/** What a {@link CanvasConnection} needs. */
export interface ConnectionOptions {
  /** WebSocket base address, e.g. `ws://127.0.0.1:8080` (the SDK appends `/ws/{canvas}`). */
  wsUrl: string
  /** The canvas id (the room name). */
  canvasId: string
  /** The credentials to connect with; asked again before every attempt. */
  credentials: () => ConnectionCredentials
  /** Asked once when the server closes with 4401: a new token to retry with, or null to give up. */
  refreshToken?: () => Promise<string | null>
  /** WebSocket implementation (default `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor
  /** Reconnect timing. */
  backoff?: BackoffOptions
  /** A socket that hears nothing for this long is dropped and reconnected (default 30000). */
  idleTimeoutMs?: number
}

/** Events of a {@link CanvasConnection}. */
export type ConnectionEvents = {
  /** The status changed. */
  status: [status: ConnectionStatus]
  /** The number of unsaved local changes changed. */
  'save-state': [state: SaveState]
  /** Every local change is durable on the server. */
  saved: []
  /** The server refused one of our updates; a resync follows. */
  refused: [refusal: Refusal, error: CanvasError]
  /** The document was replaced by a fresh one synced from the server (after a refusal). */
  resync: [doc: Y.Doc, awareness: awarenessProtocol.Awareness]
  /** The connection stopped for good (a permanent close code). */
  error: [error: CanvasError]
  /** A bound block's data arrived (message 102). */
  'block-data': [data: BlockData]
}

/**
 * The delay before reconnect attempt number `attempt` (0 for the first): exponential
 * (`initialMs * 2^attempt`, capped at `maxMs`) with "equal jitter" (between half that and
 * all of it, by `random` in [0, 1)), so clients dropped together do not return together.
 */
export function backoffDelay (attempt: number, options: BackoffOptions, random: number): number {
  const initial = options.initialMs ?? 250
  const max = options.maxMs ?? 10_000
  const ceiling = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt), 30))
  return ceiling / 2 + random * ceiling / 2
}

/**
 * Awareness that announces nothing until presence is set: y-protocols starts every client
 * with `{}`, which would show an anonymous peer and spend the server's once-a-second
 * presence write on an empty state.
 */
function newAwareness (doc: Y.Doc): awarenessProtocol.Awareness {
  const awareness = new awarenessProtocol.Awareness(doc)
  awareness.setLocalState(null)
  return awareness
}

/** The live link between one `Y.Doc` and the server. Usually used through `Canvas`. */
export class CanvasConnection extends Emitter<ConnectionEvents> {
  /** The document; replaced (and a `resync` event emitted) after a refused update. */
  doc: Y.Doc
  /** Awareness (presence) of {@link doc}; replaced together with it. */
  awareness: awarenessProtocol.Awareness
  /** The current status. */
  status: ConnectionStatus = ConnectionStatus.Offline
  /** Why the connection stopped for good, if it did. */
  permanentError: CanvasError | null = null

  private readonly options: ConnectionOptions
  private readonly WebSocketImpl: WebSocketConstructor
  private readonly save = new SaveTracker()
  private ws: WebSocketLike | null = null
  /** Whether our sync step 2 went out on the current socket (updates wait until it has). */
  private step2Sent = false
  private synced = false
  private attempts = 0
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private watchdog: ReturnType<typeof setInterval> | null = null
  private lastHeard = 0
  private refreshTried = false
  private closed = false
  private detachDoc: () => void = () => {}

  constructor (options: ConnectionOptions) {
    super()
    this.options = options
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (impl === undefined) {
      throw new CanvasError({ code: 'invalid_argument', source: 'local' },
        'no WebSocket implementation: pass one (e.g. the `ws` package) as the WebSocket option')
    }
    this.WebSocketImpl = impl
    this.doc = new Y.Doc()
    this.awareness = newAwareness(this.doc)
    this.attach()
  }

  /** Local changes not yet durable on the server. */
  get unsavedChanges (): number {
    return this.save.unsavedChanges
  }

  /** Whether a reconnect is scheduled (false once stopped by a permanent error or closed). */
  get reconnectPending (): boolean {
    return this.retryTimer !== null
  }

  /** Opens the first socket. */
  connect (): void {
    if (this.closed || this.ws !== null) return
    this.open()
  }

  /** Closes the socket for good and stops reconnecting. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.clearRetry()
    // tell peers we left (the server would also do it when the socket closes)
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.awareness.clientID], 'local')
    this.dropSocket(1000, 'client closed')
    this.stopWatchdog()
    this.detachDoc()
    this.awareness.destroy()
    this.setStatus(ConnectionStatus.Offline)
    this.clear()
  }

  // ---- document and awareness handlers ------------------------------------------------

  private attach (): void {
    const doc = this.doc
    const awareness = this.awareness
    const onUpdate = (update: Uint8Array, origin: unknown): void => {
      if (origin === this) return // from the server
      this.save.localChange()
      if (this.ws !== null && this.step2Sent && this.ws.readyState === 1) {
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MESSAGE_SYNC)
        syncProtocol.writeUpdate(encoder, update)
        this.send(encoding.toUint8Array(encoder))
        this.save.sent()
      }
      this.emitSaveState()
    }
    const onAwareness = (change: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
      if (origin === this) return
      const mine = awareness.clientID
      if (![...change.added, ...change.updated, ...change.removed].includes(mine)) return
      this.sendAwareness()
    }
    doc.on('update', onUpdate)
    awareness.on('update', onAwareness)
    this.detachDoc = () => {
      doc.off('update', onUpdate)
      awareness.off('update', onAwareness)
    }
  }

  private sendAwareness (): void {
    if (this.ws === null || this.ws.readyState !== 1) return
    if (this.awareness.getLocalState() === null && !this.awareness.meta.has(this.awareness.clientID)) return
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(encoder,
      awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.awareness.clientID]))
    this.send(encoding.toUint8Array(encoder))
  }

  // ---- sockets -------------------------------------------------------------------------

  private url (): string {
    const { token, link } = this.options.credentials()
    const params = new URLSearchParams()
    if (token != null && token !== '') params.set('token', token)
    if (link != null && link !== '') params.set('link', link)
    params.set('acks', '1')
    const base = this.options.wsUrl.replace(/\/+$/, '')
    return `${base}/ws/${encodeURIComponent(this.options.canvasId)}?${params.toString()}`
  }

  private open (): void {
    this.clearRetry()
    this.step2Sent = false
    this.synced = false
    this.setStatus(ConnectionStatus.Connecting)
    let ws: WebSocketLike
    try {
      ws = new this.WebSocketImpl(this.url())
    } catch (err) {
      this.scheduleRetry()
      queueMicrotask(() => { throw err })
      return
    }
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    this.lastHeard = Date.now()
    ws.onopen = () => {
      if (ws !== this.ws) return
      this.lastHeard = Date.now()
      this.setStatus(ConnectionStatus.Connected)
      this.startWatchdog()
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_SYNC)
      syncProtocol.writeSyncStep1(encoder, this.doc)
      this.send(encoding.toUint8Array(encoder))
      if (this.awareness.getLocalState() !== null) this.sendAwareness()
    }
    ws.onmessage = (event) => {
      if (ws !== this.ws) return
      this.lastHeard = Date.now()
      const data = event.data
      if (!(data instanceof ArrayBuffer)) return
      try {
        this.receive(new Uint8Array(data))
      } catch {
        // not a message we can read: start over on a fresh socket
        this.socketClosed(1002, 'undecodable message from the server')
      }
    }
    ws.onclose = (event) => {
      if (ws !== this.ws) return
      this.socketClosed(event.code, event.reason)
    }
    ws.onerror = () => {
      // a close event follows
    }
  }

  private send (frame: Uint8Array): void {
    if (this.ws === null || this.ws.readyState !== 1) return
    this.ws.send(frame)
  }

  /** Forgets the current socket (its later events are ignored) and closes it. */
  private dropSocket (code: number, reason: string): void {
    const ws = this.ws
    if (ws === null) return
    this.ws = null
    ws.onopen = null
    ws.onmessage = null
    ws.onclose = null
    ws.onerror = () => {}
    try {
      ws.close(code, reason)
    } catch {
      // already closed
    }
  }

  private socketClosed (code: number, reason: string): void {
    this.dropSocket(1000, '')
    this.stopWatchdog()
    this.save.connectionLost()
    this.step2Sent = false
    this.synced = false
    // peers are unknown while offline: drop their presence
    const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.awareness.clientID)
    awarenessProtocol.removeAwarenessStates(this.awareness, others, this)
    this.setStatus(ConnectionStatus.Offline)
    this.emitSaveState()
    if (this.closed) return
    const permanent = closeError(code, reason)
    if (permanent === null) {
      this.scheduleRetry()
      return
    }
    if (code === 4401 && this.options.refreshToken !== undefined && !this.refreshTried) {
      this.refreshTried = true
      this.options.refreshToken().then((token) => {
        if (this.closed) return
        if (token !== null && token !== '') this.open()
        else this.stop(permanent)
      }, () => this.stop(permanent))
      return
    }
    this.stop(permanent)
  }

  private stop (error: CanvasError): void {
    this.permanentError = error
    this.clearRetry()
    this.emit('error', error)
  }

  private scheduleRetry (): void {
    if (this.closed || this.retryTimer !== null) return
    const delay = backoffDelay(this.attempts, this.options.backoff ?? {}, Math.random())
    this.attempts += 1
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      if (!this.closed) this.open()
    }, delay)
  }

  private clearRetry (): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
  }

  private startWatchdog (): void {
    this.stopWatchdog()
    const idle = this.options.idleTimeoutMs ?? 30_000
    let pinged = 0
    this.watchdog = setInterval(() => {
      if (this.ws === null) return
      const silent = Date.now() - this.lastHeard
      if (silent > idle) {
        this.socketClosed(1006, 'no message from the server')
      } else if (silent > idle / 2 && this.lastHeard > pinged) {
        // nothing heard for a while (e.g. nobody announces presence): ask for the
        // awareness table, which the server always answers
        pinged = this.lastHeard
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MESSAGE_QUERY_AWARENESS)
        this.send(encoding.toUint8Array(encoder))
      }
    }, Math.max(100, Math.floor(idle / 10)))
    const timer = this.watchdog as { unref?: () => void }
    timer.unref?.()
  }

  private stopWatchdog (): void {
    if (this.watchdog !== null) clearInterval(this.watchdog)
    this.watchdog = null
  }

  // ---- incoming messages ---------------------------------------------------------------

  private receive (frame: Uint8Array): void {
    const decoder = decoding.createDecoder(frame)
    const type = decoding.readVarUint(decoder)
    switch (type) {
      case MESSAGE_SYNC: {
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MESSAGE_SYNC)
        const syncType = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this)
        if (syncType === syncProtocol.messageYjsSyncStep1) {
          // our step 2: everything the server lacks, offline edits included
          this.send(encoding.toUint8Array(encoder))
          this.save.sent()
          this.step2Sent = true
          this.emitSaveState()
        } else if (syncType === syncProtocol.messageYjsSyncStep2 && !this.synced) {
          this.synced = true
          this.attempts = 0
          this.refreshTried = false
          this.setStatus(ConnectionStatus.Synced)
        }
        break
      }
      case MESSAGE_AWARENESS:
        awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), this)
        break
      case MESSAGE_QUERY_AWARENESS:
        this.sendAwareness()
        break
      case MESSAGE_AUTH: {
        const permission = decoding.readVarUint(decoder)
        if (permission === 0) {
          const reason = decoding.readVarString(decoder)
          this.dropSocket(1000, 'permission denied')
          this.socketClosed(4403, reason)
        }
        break
      }
      case MESSAGE_ACK: {
        const body = decodeMsgpack(decoding.readVarUint8Array(decoder)) as { through?: unknown }
        if (typeof body.through === 'number') {
          const before = this.save.unsavedChanges
          this.save.ack(body.through)
          this.emitSaveState()
          if (before > 0 && this.save.unsavedChanges === 0) this.emit('saved')
        }
        break
      }
      case MESSAGE_ERROR: {
        const body = decodeMsgpack(decoding.readVarUint8Array(decoder)) as { code?: unknown, message?: unknown, seq?: unknown }
        const refusal: Refusal = {
          code: typeof body.code === 'string' ? body.code : 'unknown',
          message: typeof body.message === 'string' ? body.message : '',
          seq: typeof body.seq === 'number' ? body.seq : null
        }
        this.refused(refusal)
        break
      }
      case MESSAGE_BLOCK_DATA: {
        const data = blockDataFrom(decodeMsgpack(decoding.readVarUint8Array(decoder)))
        if (data !== null) this.emit('block-data', data)
        break
      }
      default:
        // unknown extensions are ignored, as standard clients do
        break
    }
  }

  /** A refused update: report it, then replace the document with the server's. */
  private refused (refusal: Refusal): void {
    const error = new CanvasError(
      { code: 'update_refused', source: 'socket', refusal: refusal.code, seq: refusal.seq },
      `update refused (${refusal.code}): ${refusal.message}`)
    this.dropSocket(1000, 'resync after a refused update')
    this.stopWatchdog()
    this.emit('refused', refusal, error)
    this.resync()
  }

  private resync (): void {
    const oldDoc = this.doc
    const oldAwareness = this.awareness
    const localState = oldAwareness.getLocalState()
    this.detachDoc()
    oldAwareness.destroy()
    this.doc = new Y.Doc()
    this.awareness = newAwareness(this.doc)
    if (localState !== null) this.awareness.setLocalState(localState)
    this.attach()
    this.save.reset()
    this.emitSaveState()
    this.setStatus(ConnectionStatus.Offline)
    this.emit('resync', this.doc, this.awareness)
    oldDoc.destroy()
    if (!this.closed) this.open()
  }

  // ---- helpers -------------------------------------------------------------------------

  private setStatus (status: ConnectionStatus): void {
    if (this.status === status) return
    this.status = status
    this.emit('status', status)
  }

  private emitSaveState (): void {
    this.emit('save-state', { unsavedChanges: this.save.unsavedChanges })
  }
}
