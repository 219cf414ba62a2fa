/**
 * `@canvas-engine/sdk/live`: live canvases. {@link CanvasClient} (the REST client plus
 * `openCanvas`), {@link Canvas}, the connection, presence, save state, the errors, and `Y`:
 * the application's own `yjs` (a peer dependency), so documents and types are one copy.
 */

export { CanvasClient } from '../client.js'
export type { CanvasClientOptions, OpenCanvasOptions } from '../client.js'
export { Canvas, LOCAL_ORIGIN } from '../canvas.js'
export type {
  Block, BlockChange, BlockMetadata, BlockPosition, BlockType, CanvasEvents, CanvasMeta, CanvasOptions,
  DataStatus, NewBlock, SharingGrant, SharingSettings
} from '../canvas.js'
export {
  CanvasConnection, backoffDelay, MESSAGE_ACK, MESSAGE_AUTH, MESSAGE_BLOCK_DATA, MESSAGE_AWARENESS, MESSAGE_ERROR,
  MESSAGE_QUERY_AWARENESS, MESSAGE_SYNC
} from '../connection.js'
export type {
  BackoffOptions, ConnectionCredentials, ConnectionEvents, ConnectionOptions, Refusal,
  WebSocketConstructor, WebSocketLike
} from '../connection.js'
export { Presence } from '../presence.js'
export type { Peer, PresenceCursor, PresenceEvents, PresenceState, PresenceUser } from '../presence.js'
export { ConnectionStatus, SaveTracker } from '../status.js'
export type { SaveState } from '../status.js'
export { CanvasError, PERMANENT_CLOSE_CODES, isCanvasError } from '../errors.js'
export type { CanvasErrorCode, CanvasErrorInfo, ErrorSource, RefusalCode } from '../errors.js'
export { Emitter } from '../events.js'
export * as Y from 'yjs'
