/**
 * Presence: who else has the canvas open, where their cursor is and what they selected.
 *
 * It is the Yjs awareness state, with a fixed shape (the server reads `cursor` and
 * `selection` into `canvas:presence:{canvas}` and `GET /canvases/{id}/presence`):
 *
 * ```json
 * { "user": { "id": "...", "name": "Ann", "color": "#e91e63" },
 *   "cursor": { "x": 120, "y": 80, "block": "block_1" },
 *   "selection": ["block_1"] }
 * ```
 */

import type { Awareness } from 'y-protocols/awareness'
import { Emitter } from './events.js'

/** Who a client is, as shown to others. */
export interface PresenceUser {
  /** The user's id, if signed in. */
  id?: string
  /** Display name. */
  name: string
  /** A CSS colour for their cursor. */
  color: string
}

/** A pointer position, in canvas pixels, optionally over a block. */
export interface PresenceCursor {
  /** Horizontal position in pixels from the grid's left edge. */
  x: number
  /** Vertical position in pixels from the grid's top edge. */
  y: number
  /** The block under the pointer, if any. */
  block?: string | null
}

/** What one client announces. */
export interface PresenceState {
  /** Who they are. */
  user?: PresenceUser
  /** Their pointer, or null when it is outside the canvas. */
  cursor?: PresenceCursor | null
  /** The ids of the blocks they selected. */
  selection?: string[] | null
}

/** Another client with the canvas open. */
export interface Peer extends PresenceState {
  /** Their Yjs client id (one per open canvas; a user may have several). */
  clientId: number
}

/** Events of {@link Presence}. */
export type PresenceEvents = {
  /** Someone's presence changed (joined, moved, left). */
  change: [peers: Peer[]]
}

/** The presence of one open canvas. Survives the canvas's resyncs. */
export class Presence extends Emitter<PresenceEvents> {
  private awareness: Awareness
  private detach: () => void = () => {}

  /** @internal Created by `Canvas`. */
  constructor (awareness: Awareness) {
    super()
    this.awareness = awareness
    this.bind(awareness)
  }

  /** @internal The connection replaced its awareness (resync): keep our state, follow the new one. */
  rebind (awareness: Awareness): void {
    this.detach()
    this.awareness = awareness
    this.bind(awareness)
    this.emit('change', this.peers())
  }

  private bind (awareness: Awareness): void {
    const onChange = (): void => this.emit('change', this.peers())
    awareness.on('change', onChange)
    this.detach = () => awareness.off('change', onChange)
  }

  /** Our own client id. */
  get clientId (): number {
    return this.awareness.clientID
  }

  /** Our own announced state. */
  get local (): PresenceState {
    return (this.awareness.getLocalState() ?? {}) as PresenceState
  }

  /** Sets several fields at once (one awareness update); fields not given are kept. */
  update (state: PresenceState): void {
    this.awareness.setLocalState({ ...(this.awareness.getLocalState() ?? {}), ...state })
  }

  /** Sets who we are (name and colour shown with our cursor). */
  setUser (user: PresenceUser): void {
    this.awareness.setLocalStateField('user', user)
  }

  /** Sets our cursor (null when the pointer left the canvas). */
  setCursor (cursor: PresenceCursor | null): void {
    this.awareness.setLocalStateField('cursor', cursor)
  }

  /** Sets the ids of the blocks we selected. */
  setSelection (selection: string[] | null): void {
    this.awareness.setLocalStateField('selection', selection)
  }

  /** Everyone else with the canvas open, ordered by client id. */
  peers (): Peer[] {
    const out: Peer[] = []
    for (const [clientId, state] of this.awareness.getStates()) {
      if (clientId === this.awareness.clientID) continue
      out.push({ clientId, ...(state as PresenceState) })
    }
    return out.sort((a, b) => a.clientId - b.clientId)
  }

  /** @internal */
  destroy (): void {
    this.detach()
    this.clear()
  }
}
