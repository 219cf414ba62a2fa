/**
 * The SDK's one error type: {@link CanvasError}, whose `info` is a discriminated union on
 * `code`. Every failure the SDK reports (a REST call, a closed connection, an update the
 * server refused, a bad argument) is a `CanvasError`, so callers switch on `err.info.code`.
 *
 * ```ts
 * try { await client.login(email, password) }
 * catch (err) {
 *   if (isCanvasError(err, 'unauthorized')) showLoginError()
 *   else throw err
 * }
 * ```
 */

/** Why the server refused a document update (extension message 101's `code`). */
export type RefusalCode = 'read_only' | 'forbidden' | 'invalid_schema' | 'missing_dependency' | (string & {})

/** Where an error came from. */
export type ErrorSource = 'http' | 'socket' | 'local'

/** Every kind of failure, told apart by `code` (and `source` where one code has several). */
export type CanvasErrorInfo =
  /** No, expired or unknown credentials: HTTP 401, or the socket closed with 4401. */
  | { code: 'unauthorized'; source: 'http'; status: number; serverCode: string }
  | { code: 'unauthorized'; source: 'socket'; closeCode: 4401; reason: string }
  /** Signed in but not allowed: HTTP 403, or the socket closed with 4403. */
  | { code: 'forbidden'; source: 'http'; status: number; serverCode: string }
  | { code: 'forbidden'; source: 'socket'; closeCode: 4403; reason: string }
  /** No such resource (or not visible to you): HTTP 404, or the socket closed with 4404. */
  | { code: 'not_found'; source: 'http'; status: number; serverCode: string }
  | { code: 'not_found'; source: 'socket'; closeCode: 4404; reason: string }
  /** A conflict (HTTP 409): a unique value is taken, or a restored block no longer fits the grid. */
  | { code: 'conflict'; source: 'http'; status: number; serverCode: string }
  /** The request was malformed or a field invalid (HTTP 400; `serverCode` says which, e.g. `invalid_name`). */
  | { code: 'invalid_request'; source: 'http'; status: number; serverCode: string }
  /** The socket closed with 4400: the server could not decode what this client sent. */
  | { code: 'invalid_request'; source: 'socket'; closeCode: 4400; reason: string }
  /** A body or message was too large (HTTP 413, or the socket closed with 4413). */
  | { code: 'too_large'; source: 'http'; status: number; serverCode: string }
  | { code: 'too_large'; source: 'socket'; closeCode: 4413; reason: string }
  /** Too many calls (HTTP 429 with `Retry-After`). */
  | { code: 'rate_limited'; source: 'http'; status: number; serverCode: string; retryAfterSeconds: number | null }
  /** The server failed (HTTP 5xx). */
  | { code: 'server_error'; source: 'http'; status: number; serverCode: string }
  /** The server could not be reached (fetch failed). */
  | { code: 'network'; source: 'http'; cause: unknown }
  /** The server answered with something that is not the expected JSON. */
  | { code: 'invalid_response'; source: 'http'; status: number }
  /** The server refused one of this client's document updates (extension message 101). */
  | { code: 'update_refused'; source: 'socket'; refusal: RefusalCode; seq: number | null }
  /** A method was called with an argument that cannot work (no such block, position off the grid, ...). */
  | { code: 'invalid_argument'; source: 'local' }
  /** The canvas was closed with {@link Canvas.close} and cannot be used any more. */
  | { code: 'closed'; source: 'local' }

/** The `code` values of {@link CanvasErrorInfo}. */
export type CanvasErrorCode = CanvasErrorInfo['code']

/** An error from the SDK. Narrow on `err.info.code` (and `err.info.source`). */
export class CanvasError<I extends CanvasErrorInfo = CanvasErrorInfo> extends Error {
  /** What went wrong, as data. */
  readonly info: I

  constructor (info: I, message: string) {
    super(message)
    this.name = 'CanvasError'
    this.info = info
  }

  /** Shorthand for `info.code`. */
  get code (): I['code'] {
    return this.info.code
  }
}

/** Whether `err` is a {@link CanvasError}, optionally of one code. */
export function isCanvasError<C extends CanvasErrorCode> (
  err: unknown,
  code?: C
): err is CanvasError<Extract<CanvasErrorInfo, { code: C }>> {
  return err instanceof CanvasError && (code === undefined || err.info.code === code)
}

/** A local argument error. */
export function invalidArgument (message: string): CanvasError {
  return new CanvasError({ code: 'invalid_argument', source: 'local' }, message)
}

/** Close codes after which reconnecting cannot help: the SDK stops and reports the error. */
export const PERMANENT_CLOSE_CODES: ReadonlySet<number> = new Set([4400, 4401, 4403, 4404, 4413])

/** The error for a permanent close code, or `null` for a code worth reconnecting after. */
export function closeError (closeCode: number, reason: string): CanvasError | null {
  const text = reason === '' ? `connection closed with ${closeCode}` : `connection closed with ${closeCode}: ${reason}`
  switch (closeCode) {
    case 4400: return new CanvasError({ code: 'invalid_request', source: 'socket', closeCode, reason }, text)
    case 4401: return new CanvasError({ code: 'unauthorized', source: 'socket', closeCode, reason }, text)
    case 4403: return new CanvasError({ code: 'forbidden', source: 'socket', closeCode, reason }, text)
    case 4404: return new CanvasError({ code: 'not_found', source: 'socket', closeCode, reason }, text)
    case 4413: return new CanvasError({ code: 'too_large', source: 'socket', closeCode, reason }, text)
    default: return null
  }
}

/** The error for an HTTP error response (`{"error": {"code", "message"}}`). */
export function httpError (status: number, serverCode: string, message: string, retryAfter: string | null): CanvasError {
  const text = `${status} ${serverCode}: ${message}`
  if (status === 401) return new CanvasError({ code: 'unauthorized', source: 'http', status, serverCode }, text)
  if (status === 403) return new CanvasError({ code: 'forbidden', source: 'http', status, serverCode }, text)
  if (status === 404) return new CanvasError({ code: 'not_found', source: 'http', status, serverCode }, text)
  if (status === 409) return new CanvasError({ code: 'conflict', source: 'http', status, serverCode }, text)
  if (status === 413) return new CanvasError({ code: 'too_large', source: 'http', status, serverCode }, text)
  if (status === 429) {
    const seconds = retryAfter === null ? Number.NaN : Number(retryAfter)
    return new CanvasError({
      code: 'rate_limited',
      source: 'http',
      status,
      serverCode,
      retryAfterSeconds: Number.isFinite(seconds) ? seconds : null
    }, text)
  }
  if (status >= 500) return new CanvasError({ code: 'server_error', source: 'http', status, serverCode }, text)
  return new CanvasError({ code: 'invalid_request', source: 'http', status, serverCode }, text)
}
