#!/usr/bin/env node
// Development aid, not run by CI: a WebSocket proxy in front of a plain y-websocket server
// that mimics the canvas server's viewer rule, so part f of interop.mjs can be exercised
// before the canvas server exists. For connections whose ?token= equals VIEWER_TOKEN it
// drops every non-empty document update (sync step 2 / update) the client sends and answers
// with an extension frame: varuint 101 followed by a MessagePack map {code, message, seq}.
// Everything else is piped through unchanged, one frame for one frame.
//
//   UPSTREAM=ws://127.0.0.1:P LISTEN_PORT=Q VIEWER_TOKEN=viewer node tests/js/dev/viewer-proxy.mjs
//   then run interop.mjs with CANVAS_WS_URL=ws://127.0.0.1:Q TOKEN_VIEWER=viewer

import { WebSocketServer, WebSocket } from 'ws'
import { encode } from '@msgpack/msgpack'
import { readVarUint, toBytes } from '../lib/util.mjs'

const upstream = process.env.UPSTREAM
const port = Number(process.env.LISTEN_PORT)
const viewerToken = process.env.VIEWER_TOKEN || 'viewer'
if (!upstream || !port) {
  console.error('viewer-proxy: set UPSTREAM and LISTEN_PORT')
  process.exit(2)
}

const wss = new WebSocketServer({ host: '127.0.0.1', port })
wss.on('connection', (client, req) => {
  const url = new URL(req.url, 'ws://proxy')
  const isViewer = url.searchParams.get('token') === viewerToken
  const up = new WebSocket(upstream + req.url)
  const pending = []
  let seq = 0
  up.on('open', () => { for (const m of pending.splice(0)) up.send(m) })
  up.on('message', (data) => { if (client.readyState === WebSocket.OPEN) client.send(toBytes(data)) })
  up.on('close', () => client.close())
  up.on('error', () => client.close())
  client.on('close', () => up.close())
  client.on('message', (data) => {
    const bytes = toBytes(data)
    seq++
    if (isViewer && refusable(bytes)) {
      const body = encode({ code: 'forbidden', message: 'viewers may not change the canvas', seq })
      const frame = new Uint8Array(1 + body.length)
      frame[0] = 101
      frame.set(body, 1)
      client.send(frame)
      return
    }
    if (up.readyState === WebSocket.OPEN) up.send(bytes)
    else pending.push(bytes)
  })
})

// sync message (0) whose sub type is step 2 (1) or update (2) and whose update is not empty
function refusable (bytes) {
  const t = readVarUint(bytes, 0)
  if (!t || t[0] !== 0) return false
  const sub = readVarUint(bytes, t[1])
  if (!sub || (sub[0] !== 1 && sub[0] !== 2)) return false
  const len = readVarUint(bytes, t[1] + sub[1])
  // an empty v1 update is [0 structs, 0 deletes] = 2 bytes
  return len && len[0] > 2
}

console.error(`viewer-proxy on ws://127.0.0.1:${port} -> ${upstream} (viewer token ${JSON.stringify(viewerToken)})`)
