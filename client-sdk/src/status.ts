/**
 * Connection status and save state.
 *
 * Status: `connecting` (a socket is opening) -> `connected` (open, syncing) -> `synced` (the
 * server's document has been received) -> `offline` (closed; a reconnect is scheduled unless
 * the close was permanent or the canvas was closed).
 *
 * Save state comes from the server's durable acknowledgements (extension message 100,
 * `{through}`: the first `through` document messages this connection sent are durable or
 * were refused). {@link SaveTracker} maps those message numbers back to local changes.
 */

/** The connection statuses, as constants. */
export const ConnectionStatus = {
  /** A socket is opening. */
  Connecting: 'connecting',
  /** The socket is open; the document is being exchanged. */
  Connected: 'connected',
  /** The server's document has been received; edits flow both ways. */
  Synced: 'synced',
  /** No socket (waiting to reconnect, stopped by a permanent error, or closed). */
  Offline: 'offline'
} as const

/** One of {@link ConnectionStatus}. */
export type ConnectionStatus = typeof ConnectionStatus[keyof typeof ConnectionStatus]

/** How many local changes the server has not yet acknowledged as durable. */
export interface SaveState {
  /** Local changes (transactions) not yet durable on the server; 0 means everything is saved. */
  unsavedChanges: number
}

/**
 * Bookkeeping from local changes to acknowledged message numbers. Pure (no I/O): the
 * connection calls it as it sends and receives.
 *
 * - {@link localChange}: a local transaction changed the document.
 * - {@link sent}: a document message (sync step 2 or update) left on the current socket,
 *   carrying every change not yet sent; it gets the next message number.
 * - {@link ack}: the server acknowledged messages `1..through`.
 * - {@link connectionLost}: the socket closed; unacknowledged changes count as unsent
 *   again (the sync step 2 on the next socket carries whatever the server still lacks),
 *   and message numbers restart at 1 (the server counts per connection).
 */
export class SaveTracker {
  private unsent = 0
  private seq = 0
  private readonly inFlight: Array<{ seq: number, changes: number }> = []

  /** Local changes not yet acknowledged. */
  get unsavedChanges (): number {
    return this.unsent + this.inFlight.reduce((n, m) => n + m.changes, 0)
  }

  /** Counts one local change. */
  localChange (): void {
    this.unsent += 1
  }

  /** Records a document message sent now; returns its number on this connection. */
  sent (): number {
    this.seq += 1
    this.inFlight.push({ seq: this.seq, changes: this.unsent })
    this.unsent = 0
    return this.seq
  }

  /** Applies an acknowledgement; returns the number of changes it settled. */
  ack (through: number): number {
    let settled = 0
    while (this.inFlight.length > 0 && (this.inFlight[0]?.seq ?? Infinity) <= through) {
      settled += this.inFlight.shift()?.changes ?? 0
    }
    return settled
  }

  /** The socket closed: what was in flight is unsent again; numbering restarts. */
  connectionLost (): void {
    this.unsent = this.unsavedChanges
    this.inFlight.length = 0
    this.seq = 0
  }

  /** Forgets everything (after a resync, local changes are dropped). */
  reset (): void {
    this.unsent = 0
    this.inFlight.length = 0
    this.seq = 0
  }
}
