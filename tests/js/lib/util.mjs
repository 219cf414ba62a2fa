// Small helpers for interop.mjs: waiting, canonical JSON, frame inspection.
// No project code here: everything the checks talk to is the unmodified yjs / y-websocket.

import { decode as msgpackDecode } from '@msgpack/msgpack'

const started = Date.now()

/** Progress line on stderr (stdout is kept for the one JSON summary line). */
export function log (...args) {
  const t = ((Date.now() - started) / 1000).toFixed(2)
  console.error(`[interop +${t}s]`, ...args)
}

export function elapsedMs () {
  return Date.now() - started
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A check failed: the message says what was expected and what was seen. */
export class CheckError extends Error {}

export function check (cond, message) {
  if (!cond) throw new CheckError(message)
}

/**
 * Polls `predicate` every 20 ms until it returns a truthy value (which is returned) or
 * `timeoutMs` passes; then throws a CheckError naming `what` and, if given, `detail()`
 * (a snapshot of what was seen instead).
 */
export async function waitFor (what, predicate, { timeoutMs = 5000, detail } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let value
    let lastError = null
    try {
      value = predicate()
    } catch (e) {
      if (e instanceof CheckError) throw e // a definite failure: no point in waiting
      lastError = e
    }
    if (value) return value
    if (Date.now() >= deadline) {
      let seen = ''
      if (detail) {
        try {
          seen = `; seen: ${detail()}`
        } catch (e) {
          seen = `; (detail failed: ${e.message})`
        }
      }
      const err = lastError ? `; last error: ${lastError.message}` : ''
      throw new CheckError(`timed out after ${timeoutMs} ms waiting for ${what}${seen}${err}`)
    }
    await sleep(20)
  }
}

/**
 * JSON with object keys sorted at every level. yrs keeps plain objects stored inside a
 * Y.Map in a hash map, so key order is not preserved: always compare this form.
 */
export function canonicalJson (value) {
  return JSON.stringify(sortKeys(value))
}

function sortKeys (value) {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value instanceof Uint8Array) return Array.from(value)
  if (value !== null && typeof value === 'object') {
    const out = {}
    for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k])
    return out
  }
  return value
}

/** Reads a lib0 varuint at `offset`; returns [value, bytesRead] or null if truncated. */
export function readVarUint (bytes, offset = 0) {
  let num = 0
  let mult = 1
  for (let i = offset; i < bytes.length && i < offset + 8; i++) {
    const b = bytes[i]
    num += (b & 0x7f) * mult
    mult *= 128
    if (b < 0x80) return [num, i - offset + 1]
  }
  return null
}

/** Any `ws` message payload (Buffer, ArrayBuffer, Buffer[]) as a Uint8Array. */
export function toBytes (data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return new Uint8Array(0)
}

/**
 * Decodes the MessagePack body of an extension frame (type >= 100). The design says
 * "MessagePack bodies"; it does not say whether the body follows the type directly or is
 * length-prefixed (lib0 writeVarUint8Array), and rmp-serde writes a struct as an array
 * (`to_vec`) or as a map (`to_vec_named`). Accept all of these and report which one it was.
 */
export function decodeExtensionBody (frame, typeLen) {
  const rest = frame.subarray(typeLen)
  const attempts = []
  try {
    attempts.push({ framing: 'raw', value: msgpackDecode(rest) })
  } catch (e) {
    const lp = readVarUint(rest, 0)
    if (lp && lp[0] + lp[1] === rest.length) {
      try {
        attempts.push({
          framing: 'length-prefixed',
          value: msgpackDecode(rest.subarray(lp[1]))
        })
      } catch (e2) {
        throw new Error(`undecodable MessagePack body (${e.message}; length-prefixed: ${e2.message})`)
      }
    } else {
      throw new Error(`undecodable MessagePack body: ${e.message}`)
    }
  }
  const { framing, value } = attempts[0]
  let shape
  let fields
  if (Array.isArray(value)) {
    shape = 'array'
    fields = { code: value[0], message: value[1], seq: value[2] }
  } else if (value instanceof Map) {
    shape = 'map'
    fields = { code: value.get('code'), message: value.get('message'), seq: value.get('seq') }
  } else if (value !== null && typeof value === 'object') {
    shape = 'map'
    fields = { code: value.code, message: value.message, seq: value.seq }
  } else {
    shape = typeof value
    fields = { code: undefined, message: undefined, seq: undefined }
  }
  if (typeof fields.seq === 'bigint') fields.seq = Number(fields.seq)
  return { framing, shape, raw: sortKeys(toPlain(value)), ...fields }
}

function toPlain (v) {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toPlain(x)]))
  if (Array.isArray(v)) return v.map(toPlain)
  if (typeof v === 'bigint') return Number(v)
  return v
}
