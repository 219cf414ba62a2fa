/**
 * `CanvasClient`: the {@link RestClient} plus live canvases ({@link CanvasClient.openCanvas}),
 * which share its session token and its `onTokenExpired` hook (asked again when a canvas's
 * socket is closed with 4401).
 */

import { Canvas, type CanvasOptions } from './canvas.js'
import type { BackoffOptions, WebSocketConstructor } from './connection.js'
import { RestClient, type RestClientOptions } from './rest.js'

/** Options of {@link CanvasClient}. */
export interface CanvasClientOptions extends RestClientOptions {
  /** WebSocket base address; by default `baseUrl` with `http` -> `ws`. */
  wsUrl?: string
  /** WebSocket implementation (default `globalThis.WebSocket`; in Node pass the `ws` package). */
  WebSocket?: WebSocketConstructor
  /** Reconnect timing for live canvases. */
  backoff?: BackoffOptions
}

/** Options of {@link CanvasClient.openCanvas}. */
export interface OpenCanvasOptions {
  /** Open through a public link instead of the session (read-only). */
  link?: string
  /** Reconnect timing (default: the client's). */
  backoff?: BackoffOptions
  /** Undo steps closer together than this merge (default 500 ms). */
  undoCaptureTimeoutMs?: number
  /** A silent socket is dropped after this long (default 30000 ms). */
  idleTimeoutMs?: number
}

/** The REST API client that also opens live canvases. */
export class CanvasClient extends RestClient {
  /** The WebSocket base address. */
  readonly wsUrl: string
  private readonly liveOptions: CanvasClientOptions

  constructor (options: CanvasClientOptions) {
    super(options)
    this.liveOptions = options
    this.wsUrl = (options.wsUrl ?? this.baseUrl.replace(/^http/, 'ws')).replace(/\/+$/, '')
  }

  /** Opens a canvas live: connects at once; see {@link Canvas}. */
  openCanvas (id: string, options: OpenCanvasOptions = {}): Canvas {
    const link = options.link
    const canvasOptions: CanvasOptions = {
      wsUrl: this.wsUrl,
      canvasId: id,
      credentials: () => (link !== undefined ? { link } : { token: this.token }),
      rest: this,
      ...(link === undefined && this.liveOptions.onTokenExpired !== undefined
        ? { refreshToken: async () => await this.refreshToken() }
        : {}),
      ...(this.liveOptions.WebSocket !== undefined ? { WebSocket: this.liveOptions.WebSocket } : {}),
      ...(options.backoff ?? this.liveOptions.backoff ? { backoff: options.backoff ?? this.liveOptions.backoff } : {}),
      ...(options.undoCaptureTimeoutMs !== undefined ? { undoCaptureTimeoutMs: options.undoCaptureTimeoutMs } : {}),
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {})
    }
    return new Canvas(canvasOptions)
  }
}
