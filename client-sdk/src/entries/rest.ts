/**
 * `@canvas-engine/sdk/rest`: the REST API client and the SDK's errors, for code that never
 * opens a live canvas. Nothing here imports Yjs (a test checks the built package).
 */

export { RestClient } from '../rest.js'
export type { RestClientOptions } from '../rest.js'
export { CanvasError, PERMANENT_CLOSE_CODES, isCanvasError } from '../errors.js'
export type { CanvasErrorCode, CanvasErrorInfo, ErrorSource, RefusalCode } from '../errors.js'
export type * from '../types.js'
export { answersBinding, bindingsIn, blockDataFrom, canonicalJson, renderNarrative, rowObjects } from '../bound.js'
export type { NarrativeBinding } from '../bound.js'
