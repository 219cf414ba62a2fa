/**
 * The canvas server's TypeScript SDK.
 *
 * - {@link CanvasClient} (`rest.ts`): the REST API, typed, with a token-refresh hook.
 * - {@link Canvas} (`canvas.ts`): an open canvas, typed blocks over its Yjs document,
 *   per-block change events and undo/redo of your own edits.
 * - {@link CanvasConnection} (`connection.ts`): the y-websocket protocol with durable
 *   acknowledgements, reconnects and resync after a refused update.
 * - {@link Presence} (`presence.ts`): cursors, selections and who is there.
 * - `status.ts`: connection status constants and save-state bookkeeping.
 * - {@link CanvasError} (`errors.ts`): the one error type, a union on `code`.
 */

export { CanvasClient } from './rest.js'
export type { CanvasClientOptions, OpenCanvasOptions } from './rest.js'
export { Canvas, LOCAL_ORIGIN } from './canvas.js'
export type {
  Block, BlockChange, BlockMetadata, BlockPosition, BlockType, CanvasEvents, CanvasMeta, CanvasOptions,
  NewBlock, SharingGrant, SharingSettings
} from './canvas.js'
export {
  CanvasConnection, backoffDelay, MESSAGE_ACK, MESSAGE_AUTH, MESSAGE_AWARENESS, MESSAGE_ERROR,
  MESSAGE_QUERY_AWARENESS, MESSAGE_SYNC
} from './connection.js'
export type {
  BackoffOptions, ConnectionCredentials, ConnectionEvents, ConnectionOptions, Refusal,
  WebSocketConstructor, WebSocketLike
} from './connection.js'
export { Presence } from './presence.js'
export type { Peer, PresenceCursor, PresenceEvents, PresenceState, PresenceUser } from './presence.js'
export { ConnectionStatus, SaveTracker } from './status.js'
export type { SaveState } from './status.js'
export { CanvasError, PERMANENT_CLOSE_CODES, isCanvasError } from './errors.js'
export type { CanvasErrorCode, CanvasErrorInfo, ErrorSource, RefusalCode } from './errors.js'
export { Emitter } from './events.js'
export type * from './types.js'
export * as Y from 'yjs'
