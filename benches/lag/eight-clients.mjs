#!/usr/bin/env node
// The lag path under ordinary clients (issue: "eight y-websocket clients in one Node process
// doing ~2,400 edits/s in one room got closed with 1013 repeatedly"): eight unmodified
// `yjs` + `y-websocket` WebsocketProviders in this one process (so they read slowly, as a
// busy browser tab does) edit one canvas at LAG_RATE edits/s in total for LAG_SECS,
// then stop; the script waits until every client holds every edit.
//
// Environment:
//   CANVAS_ADDR   required  host:port of a canvas server (REST and WebSocket)
//   SERVER_PID    optional  its process id: the peak RSS (VmHWM) is read at the end
//   LAG_CLIENTS   optional  clients, default 8
//   LAG_RATE      optional  edits per second, all clients together, default 2400
//   LAG_SECS      optional  seconds of editing, default 20
//   LAG_EDIT      optional  what an edit is: "type" (default: a keystroke at the end of the
//                 client's own narrative text; the server merges a run of them into one
//                 logged and relayed update) or "move" (the client's own block's position.y
//                 set to the next value, as when dragging: each one goes through the
//                 inspector's general path and is logged and relayed on its own)
//   LAG_CONVERGE_SECS  optional  how long to wait for convergence after the edits stop,
//                 default 120 (not converged by then: reported as such)
//
// It signs up one user, makes a project and a canvas with one narrative block per client
// (REST and one client's transaction), and each client edits its own block, one update per
// edit. Output: progress on stderr, one JSON line on stdout:
//   closes_1013      closes with 1013 (try again later) the clients saw
//   closes_other     other close codes seen, {code: count}
//   reconnects       connections made after each client's first
//   edits            edits made (all clients)
//   converge_ms      from the last edit until every client held every edit
//                    (null: not within LAG_CONVERGE_SECS)
//   server_peak_rss_mib  the server's VmHWM at the end (null without SERVER_PID)
// Exit status 0 when converged, 1 otherwise, 2 for a bad environment.
//
// The modules come from tests/js/node_modules (`npm ci` there), loaded through one
// `require` so that y-websocket and this script share one copy of yjs.

import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'

const require = createRequire(new URL('../../tests/js/package.json', import.meta.url))
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')
const WebSocket = require('ws')

const env = process.env
const addr = env.CANVAS_ADDR
const clients = Number(env.LAG_CLIENTS || 8)
const rate = Number(env.LAG_RATE || 2400)
const secs = Number(env.LAG_SECS || 20)
const convergeSecs = Number(env.LAG_CONVERGE_SECS || 120)
const editKind = env.LAG_EDIT || 'type'
if (!addr || !(clients > 0) || !(rate > 0) || !(secs > 0) || !(convergeSecs > 0) ||
  !['type', 'move'].includes(editKind)) {
  console.error('eight-clients: set CANVAS_ADDR (host:port); LAG_CLIENTS, LAG_RATE, LAG_SECS, ' +
    'LAG_CONVERGE_SECS must be positive numbers, LAG_EDIT "type" or "move"')
  process.exit(2)
}

const started = Date.now()
const log = (...args) => console.error(`[lag +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function post (path, token, body) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(`http://${addr}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
  const json = await res.json().catch(() => null)
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

function peakRssMib () {
  if (!env.SERVER_PID) return null
  try {
    const status = readFileSync(`/proc/${env.SERVER_PID}/status`, 'utf8')
    const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1])
    return Number.isFinite(kib) ? Math.round(kib / 102.4) / 10 : null
  } catch {
    return null
  }
}

async function waitUntil (what, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

const summary = {
  clients,
  rate,
  secs,
  edit: editKind,
  edits: 0,
  closes_1013: 0,
  closes_other: {},
  reconnects: 0,
  converge_ms: null,
  server_peak_rss_mib: null
}

const nonce = Math.random().toString(16).slice(2, 10)
const user = await post('/api/v1/auth/signup', null, {
  email: `lag-${nonce}@example.com`,
  username: `lag_${nonce}`,
  password: 'correct horse battery'
})
const project = await post('/api/v1/projects', user.token, { name: 'lag' })
const canvas = await post(`/api/v1/projects/${project.id}/canvases`, user.token, { name: 'lag' })

const peers = []
for (let i = 0; i < clients; i++) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(`ws://${addr}/ws`, canvas.id, doc, {
    params: { token: user.token },
    WebSocketPolyfill: WebSocket,
    disableBc: true
  })
  const peer = { doc, provider, connects: 0, typed: 0 }
  provider.on('status', ({ status }) => {
    if (status === 'connected') {
      peer.connects++
      if (peer.connects > 1) summary.reconnects++
    }
  })
  provider.on('connection-close', (event) => {
    const code = event?.code
    if (code === 1013) summary.closes_1013++
    else if (code !== undefined && code !== 1000) summary.closes_other[code] = (summary.closes_other[code] || 0) + 1
  })
  peers.push(peer)
}
await waitUntil('every client to sync', () => peers.every((p) => p.provider.synced), 20000)

// One narrative block per client, made by the first in one transaction.
const blockId = (i) => `lag-${nonce}-${i}`
const ymap = (entries) => {
  const m = new Y.Map()
  for (const [k, v] of Object.entries(entries)) m.set(k, v)
  return m
}
peers[0].doc.transact(() => {
  const blocks = peers[0].doc.getMap('blocks')
  for (let i = 0; i < clients; i++) {
    blocks.set(blockId(i), ymap({
      id: blockId(i),
      type: 'narrative',
      position: ymap({ x: 0, y: 4 * i, w: 4, h: 4 }),
      content: ymap({ text: new Y.Text(''), data_bindings: new Y.Array() }),
      metadata: new Y.Map()
    }))
  }
})
const blockOf = (peer, i) => peer.doc.getMap('blocks').get(blockId(i))
const textOf = (peer, i) => blockOf(peer, i)?.get('content')?.get('text')
const positionOf = (peer, i) => blockOf(peer, i)?.get('position')
await waitUntil('every client to see every block', () =>
  peers.every((p) => peers.every((_, i) => textOf(p, i) !== undefined)), 20000)
log(`${clients} clients synced on canvas ${canvas.id}; ${editKind} at ${rate} edits/s for ${secs} s`)

// The n-th edit of client i (n from 1): a keystroke at the end of its text, or its block
// moved to y = 4 i + n (every value new, so the last one tells that a client has them all).
const edit = (peer, i, n) => {
  if (editKind === 'type') {
    const text = textOf(peer, i)
    text.insert(text.length, String.fromCharCode(97 + (n % 26)))
  } else {
    positionOf(peer, i).set('y', 4 * i + n)
  }
}
// What a client holds of client i's edits: their count.
const heldOf = (peer, i) => editKind === 'type'
  ? textOf(peer, i)?.length
  : (positionOf(peer, i)?.get('y') ?? 0) - 4 * i

// Each client edits its own block, one edit per transaction (one update each), on a
// schedule that catches up after a slow turn of the event loop.
const perClient = rate / clients
const editStart = Date.now()
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const elapsed = Math.min(Date.now() - editStart, secs * 1000) / 1000
    const due = Math.floor(perClient * elapsed)
    peers.forEach((peer, i) => {
      while (peer.typed < due) {
        peer.typed++
        summary.edits++
        edit(peer, i, peer.typed)
      }
    })
    if (elapsed >= secs) {
      clearInterval(timer)
      resolve()
    }
  }, 10)
})
const editEnd = Date.now()
log(`${summary.edits} edits made; waiting for every client to hold all of them`)

const converged = () => peers.every((p) => peers.every((q, i) => heldOf(p, i) === q.typed))
try {
  await waitUntil('convergence', converged, convergeSecs * 1000)
  summary.converge_ms = Date.now() - editEnd
} catch (e) {
  log(e.message)
}
summary.server_peak_rss_mib = peakRssMib()
for (const p of peers) {
  p.provider.destroy()
  p.doc.destroy()
}
log(JSON.stringify(summary))
process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(summary.converge_ms === null ? 1 : 0))
