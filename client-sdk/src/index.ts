/**
 * The canvas server's TypeScript SDK: everything, i.e. the two entry points together
 * (`@canvas-engine/sdk/rest`, `src/entries/rest.ts`, imports no Yjs;
 * `@canvas-engine/sdk/live`, `src/entries/live.ts`, is the live canvases).
 *
 * - {@link RestClient} (`rest.ts`): the REST API, typed, with a token-refresh hook.
 * - {@link CanvasClient} (`client.ts`): the REST client plus live canvases (`openCanvas`).
 * - {@link Canvas} (`canvas.ts`): an open canvas, typed blocks over its Yjs document,
 *   per-block change events and undo/redo of your own edits.
 * - {@link CanvasConnection} (`connection.ts`): the y-websocket protocol with durable
 *   acknowledgements, reconnects and resync after a refused update.
 * - {@link Presence} (`presence.ts`): cursors, selections and who is there.
 * - `status.ts`: connection status constants and save-state bookkeeping.
 * - {@link CanvasError} (`errors.ts`): the one error type, a union on `code`.
 * - `Y`: the `yjs` module the SDK uses, which is the application's own (a peer dependency).
 */

export * from './entries/rest.js'
export * from './entries/live.js'
