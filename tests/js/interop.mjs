#!/usr/bin/env node
// Real-client interoperability check: the unmodified npm `yjs` + `y-websocket`
// WebsocketProvider (with `ws` as its WebSocket in Node) against a y-websocket compatible
// server (the canvas server, or a plain y-websocket server with INTEROP_SKIP_PERMISSIONS=1).
//
// Environment (the contract with the Rust integration test that spawns this script):
//   CANVAS_WS_URL      required  WebsocketProvider serverUrl, e.g. ws://127.0.0.1:PORT/ws
//                                (the provider connects to CANVAS_WS_URL/CANVAS_ID?token=...)
//   CANVAS_ID          required  room name = canvas id; the canvas must have no blocks yet
//   TOKEN_EDITOR_A     required  token of an editor (or higher) of the canvas, sent as ?token=
//   TOKEN_EDITOR_B     required  token of another (or the same) editor of the canvas
//   TOKEN_VIEWER       required unless INTEROP_SKIP_PERMISSIONS=1: token of a viewer
//   USERNAME_EDITOR_A / USERNAME_EDITOR_B  optional  the names the server stamps into the
//                                awareness states of A and B's tokens (the canvas server
//                                shows everyone under their own name); unset: the names the
//                                clients chose are expected, as a plain server relays them
//   INTEROP_SKIP_PERMISSIONS  optional  "1" skips part f (viewer refused) and the hostile
//                                awareness step; for plain servers
//   INTEROP_TIMEOUT_MS        optional  overall timeout, default 30000
//
// Output: progress on stderr; exactly one JSON summary line on stdout, printed last.
// Exit status: 0 all checks passed; 1 a check failed or the overall timeout hit;
// 2 the environment is incomplete.
//
// Run it with `node tests/js/interop.mjs` from the workspace root (or from anywhere: imports
// resolve from this file's folder, so tests/js/node_modules must exist: `npm ci` there).

import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as encoding from 'lib0/encoding'
import {
  log, elapsedMs, sleep, check, CheckError, waitFor, canonicalJson,
  readVarUint, toBytes, decodeExtensionBody
} from './lib/util.mjs'

const MSG_TYPE_NAMES = { 0: 'sync', 1: 'awareness', 2: 'auth', 3: 'query-awareness' }
const MSG_REFUSED = 101

// ---------------------------------------------------------------------------------------
// environment

const env = process.env
const skipPermissions = env.INTEROP_SKIP_PERMISSIONS === '1'
const overallTimeoutMs = Number(env.INTEROP_TIMEOUT_MS || 30000)
const required = ['CANVAS_WS_URL', 'CANVAS_ID', 'TOKEN_EDITOR_A', 'TOKEN_EDITOR_B']
if (!skipPermissions) required.push('TOKEN_VIEWER')
const missing = required.filter((k) => !env[k])
if (missing.length > 0 || !(overallTimeoutMs > 0)) {
  const error = missing.length > 0
    ? `missing environment variable(s): ${missing.join(', ')}`
    : `INTEROP_TIMEOUT_MS must be a positive number, got ${JSON.stringify(env.INTEROP_TIMEOUT_MS)}`
  console.error(`interop: ${error}`)
  console.log(JSON.stringify({ ok: false, failed_step: 'environment', error }))
  process.exit(2)
}
const serverUrl = env.CANVAS_WS_URL
const canvasId = env.CANVAS_ID

function packageVersion (name) {
  try {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
    return JSON.parse(readFileSync(url, 'utf8')).version
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------
// run state and the summary

const summary = {
  ok: false,
  failed_step: null,
  error: null,
  elapsed_ms: 0,
  server_url: serverUrl,
  canvas_id: canvasId,
  versions: {
    node: process.versions.node,
    yjs: packageVersion('yjs'),
    'y-websocket': packageVersion('y-websocket'),
    ws: packageVersion('ws')
  },
  permissions: skipPermissions ? 'skipped' : 'checked',
  steps: {},
  refusal: null,
  final_text: null,
  final_blocks: null,
  frames: {},
  closes: {},
  unknown_message_logs: 0
}
let currentStep = 'start'
let finished = false
const clients = []

// y-websocket prints 'Unable to compute message' for message types it does not know (the
// server's extension messages, type >= 100). That is expected; count it, keep printing it.
const originalConsoleError = console.error
console.error = (...args) => {
  if (args[0] === 'Unable to compute message') summary.unknown_message_logs++
  originalConsoleError(...args)
}

function finish (ok, error) {
  if (finished) return
  finished = true
  summary.ok = ok
  if (!ok) {
    summary.failed_step = currentStep
    summary.error = error
    summary.steps[currentStep] = 'failed'
  }
  summary.elapsed_ms = elapsedMs()
  for (const c of clients) {
    summary.frames[c.name] = c.frameCounts
    if (c.closes.length > 0) summary.closes[c.name] = c.closes
  }
  for (const c of clients) {
    try { c.provider.destroy() } catch {}
    try { c.doc.destroy() } catch {}
  }
  if (ok) log('all checks passed')
  else log(`FAILED in step ${currentStep}: ${error}`)
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(ok ? 0 : 1))
  // in case stdout never drains
  setTimeout(() => process.exit(ok ? 0 : 1), 2000).unref()
}

const overallTimer = setTimeout(() => {
  finish(false, `overall timeout of ${overallTimeoutMs} ms exceeded (still in step ${currentStep})`)
}, overallTimeoutMs)

process.on('uncaughtException', (e) => finish(false, `uncaught exception: ${e?.stack || e}`))
process.on('unhandledRejection', (e) => finish(false, `unhandled rejection: ${e?.stack || e}`))

async function step (name, description, fn) {
  currentStep = name
  log(`${name}: ${description}`)
  await fn()
  summary.steps[name] = 'ok'
}

// ---------------------------------------------------------------------------------------
// clients

/**
 * A Y.Doc with an unmodified WebsocketProvider. The only addition is a tap on the raw
 * socket (a subclass of ws's WebSocket that listens to 'message' before the provider does)
 * so the script can count frames by message type and decode the server's extensions.
 */
function connectClient (name, token) {
  const client = {
    name,
    doc: new Y.Doc(),
    provider: null,
    frameCounts: {},
    extensions: [], // { type, bytes, decoded|error, at }
    closes: [],
    errors: [],
    permanentClose: null
  }
  class TappedWebSocket extends WebSocket {
    constructor (url, protocols) {
      super(url, protocols)
      this.on('message', (data) => onFrame(client, toBytes(data)))
    }
  }
  client.provider = new WebsocketProvider(serverUrl, canvasId, client.doc, {
    params: { token },
    WebSocketPolyfill: TappedWebSocket,
    disableBc: true
  })
  client.provider.on('connection-close', (event) => {
    if (event) client.closes.push({ code: event.code, reason: String(event.reason || '') })
  })
  client.provider.on('connection-error', (event) => {
    client.errors.push(event?.message || event?.error?.message || String(event?.type || 'error'))
  })
  client.provider.on('closed', (event) => {
    client.permanentClose = event
  })
  clients.push(client)
  return client
}

function onFrame (client, bytes) {
  const t = readVarUint(bytes, 0)
  if (!t) return
  const [type, typeLen] = t
  const key = MSG_TYPE_NAMES[type] || String(type)
  client.frameCounts[key] = (client.frameCounts[key] || 0) + 1
  if (type >= 100) {
    const ext = { type, bytes: bytes.length, at: elapsedMs() }
    try {
      ext.decoded = decodeExtensionBody(bytes, typeLen)
    } catch (e) {
      ext.error = e.message
    }
    client.extensions.push(ext)
  }
}

function connectionTrouble (client) {
  const parts = []
  if (client.closes.length) parts.push(`closes: ${JSON.stringify(client.closes.slice(-3))}`)
  if (client.errors.length) parts.push(`errors: ${JSON.stringify(client.errors.slice(-3))}`)
  return parts.join('; ') || 'no close or error seen'
}

async function waitSynced (client, timeoutMs = 5000) {
  await waitFor(`${client.name} to reach synced`, () => {
    if (client.permanentClose) {
      throw new CheckError(`${client.name} was closed permanently by the server: code ` +
        `${client.permanentClose.code} reason ${JSON.stringify(client.permanentClose.reason)}`)
    }
    return client.provider.synced
  }, { timeoutMs, detail: () => connectionTrouble(client) })
}

const blocksOf = (client) => client.doc.getMap('blocks')
// block metadata is the server's (who created and last changed each block): compared apart
const withoutMetadata = (blocks) => Object.fromEntries(Object.entries(blocks)
  .map(([id, b]) => [id, Object.fromEntries(Object.entries(b).filter(([k]) => k !== 'metadata'))]))
const blocksJson = (client) => canonicalJson(withoutMetadata(blocksOf(client).toJSON()))
const metadataOf = (client, id) => blocksOf(client).get(id)?.get('metadata')?.toJSON() ?? {}

// ---------------------------------------------------------------------------------------
// the checks

const nonce = randomBytes(4).toString('hex')
const narrativeId = `narrative-${nonce}`
const chartId = `chart-${nonce}`
const chartContent = {
  chart_type: 'bar',
  title: 'Sales by Region',
  data_source: { type: 'query', query_id: `query-${nonce}`, parameters: {} },
  config: { x_axis: 'region', y_axis: 'total_sales', color: 'product_category', aggregation: 'sum' },
  style: { theme: 'light', colors: ['#1f77b4', '#ff7f0e', '#2ca02c'] }
}
// a token is `{user_id}.{secret}`: the server stamps blocks with that user id
const userA = env.TOKEN_EDITOR_A.split('.')[0]
// what every replica must end up with (updated as the checks go)
const expected = {
  [narrativeId]: {
    id: narrativeId,
    type: 'narrative',
    position: { x: 0, y: 0, w: 6, h: 4 },
    content: { text: 'Hello', data_bindings: [] }
  },
  [chartId]: {
    id: chartId,
    type: 'chart',
    position: { x: 6, y: 0, w: 6, h: 4 },
    content: { ...chartContent }
  }
}

function yMapFrom (entries) {
  const m = new Y.Map()
  for (const [k, v] of Object.entries(entries)) m.set(k, v)
  return m
}

async function main () {
  log(`server ${serverUrl}, canvas ${canvasId}, yjs ${summary.versions.yjs}, ` +
    `y-websocket ${summary.versions['y-websocket']}, permissions ${summary.permissions}`)

  let a, b
  await step('a_connect', 'editors A and B connect and reach synced', async () => {
    a = connectClient('A', env.TOKEN_EDITOR_A)
    b = connectClient('B', env.TOKEN_EDITOR_B)
    await Promise.all([waitSynced(a), waitSynced(b)])
    for (const c of [a, b]) {
      check(blocksOf(c).size === 0,
        `the canvas must start with no blocks, ${c.name} sees ${blocksOf(c).size}: ` +
        `${[...blocksOf(c).keys()].join(', ')}`)
    }
  })

  await step('b_add_blocks', 'A adds a narrative and a chart block in one transaction; B sees both', async () => {
    const blocks = blocksOf(a)
    let updates = 0
    const countUpdates = () => { updates++ }
    a.doc.on('update', countUpdates)
    a.doc.transact(() => {
      blocks.set(narrativeId, yMapFrom({
        id: narrativeId,
        type: 'narrative',
        position: yMapFrom({ x: 0, y: 0, w: 6, h: 4 }),
        content: yMapFrom({ text: new Y.Text('Hello'), data_bindings: new Y.Array() }),
        metadata: new Y.Map() // filled by the server; clients may only create it empty
      }))
      blocks.set(chartId, yMapFrom({
        id: chartId,
        type: 'chart',
        position: yMapFrom({ x: 6, y: 0, w: 6, h: 4 }),
        content: yMapFrom(chartContent),
        metadata: new Y.Map()
      }))
    })
    a.doc.off('update', countUpdates)
    check(updates === 1, `one transaction should give one update, got ${updates}`)
    const want = canonicalJson(expected)
    check(blocksJson(a) === want, `A's own blocks differ from what it wrote: ${blocksJson(a)}`)
    await waitFor("B to see both blocks with A's content", () => blocksJson(b) === want,
      { detail: () => blocksJson(b) })
    // the shared types must arrive as shared types, not flattened to plain values
    const nb = blocksOf(b).get(narrativeId)
    check(nb instanceof Y.Map, 'B: narrative block is not a Y.Map')
    check(nb.get('position') instanceof Y.Map, 'B: narrative position is not a Y.Map')
    check(nb.get('content') instanceof Y.Map, 'B: narrative content is not a Y.Map')
    check(nb.get('content').get('text') instanceof Y.Text, 'B: narrative content.text is not a Y.Text')
    check(nb.get('content').get('data_bindings') instanceof Y.Array, 'B: data_bindings is not a Y.Array')
    check(nb.get('metadata') instanceof Y.Map, 'B: narrative metadata is not a Y.Map')
    // the server stamps both new blocks with A's user id; every replica gets the stamp
    for (const c of [a, b]) {
      for (const id of [narrativeId, chartId]) {
        await waitFor(`${c.name} to see the server's stamp on ${id}`, () => {
          const m = metadataOf(c, id)
          return m.created_by === userA && m.last_modified_by === userA &&
            typeof m.created_at === 'string' && typeof m.last_modified_at === 'string'
        }, { detail: () => canonicalJson(metadataOf(c, id)) })
      }
    }
    const cb = blocksOf(b).get(chartId)
    check(cb instanceof Y.Map && cb.get('position') instanceof Y.Map && cb.get('content') instanceof Y.Map,
      'B: chart block, its position or its content is not a Y.Map')
  })

  await step('c_move_block', 'A moves the chart block to y=4; B sees it', async () => {
    blocksOf(a).get(chartId).get('position').set('y', 4)
    expected[chartId].position.y = 4
    const want = canonicalJson(expected[chartId].position)
    await waitFor("B to see the chart at y=4", () =>
      canonicalJson(blocksOf(b).get(chartId).get('position').toJSON()) === want,
    { detail: () => canonicalJson(blocksOf(b).get(chartId).get('position').toJSON()) })
  })

  await step('d_concurrent_typing', 'A and B type into the narrative text at the same time; both converge', async () => {
    const textA = blocksOf(a).get(narrativeId).get('content').get('text')
    const textB = blocksOf(b).get(narrativeId).get('content').get('text')
    const suffix = ' from A' // A types at the end
    const prefix = 'B says: ' // B types at the start
    const n = Math.max(suffix.length, prefix.length)
    for (let i = 0; i < n; i++) {
      // one keystroke = one transaction = one update on the wire, as in an editor
      if (i < suffix.length) textA.insert(textA.length, suffix[i])
      if (i < prefix.length) textB.insert(i, prefix[i])
      // yield now and then so some remote keystrokes land between local ones
      if (i % 3 === 2) await sleep(1)
    }
    const want = prefix + 'Hello' + suffix
    expected[narrativeId].content.text = want
    await waitFor(`A and B to converge on ${JSON.stringify(want)}`,
      () => textA.toString() === want && textB.toString() === want,
      { detail: () => `A ${JSON.stringify(textA.toString())}, B ${JSON.stringify(textB.toString())}` })
    check(blocksJson(a) === blocksJson(b), 'A and B blocks differ after typing')
  })

  const aClientId = a.doc.clientID
  let c
  await step('e_awareness', "A (and a third editor C) set awareness; B sees their states", async () => {
    const user = { name: 'Alice', color: '#f00' }
    const cursor = { block_id: narrativeId, index: 5 }
    a.provider.awareness.setLocalStateField('user', user)
    a.provider.awareness.setLocalStateField('cursor', cursor)
    const wantA = canonicalJson({ user: { ...user, name: env.USERNAME_EDITOR_A || 'Alice' }, cursor })
    await waitFor("B to see A's awareness state (user Alice + cursor)", () => {
      const s = b.provider.awareness.getStates().get(aClientId)
      return s && canonicalJson(s) === wantA
    }, { detail: () => canonicalJson(b.provider.awareness.getStates().get(aClientId) ?? null) })

    // C leaves abruptly later on (no goodbye message), to check the server's own cleanup
    c = connectClient('C', env.TOKEN_EDITOR_B)
    c.provider.awareness.setLocalStateField('user', { name: 'Carol', color: '#0f0' })
    await waitSynced(c)
    await waitFor("B to see C's awareness state (user Carol)", () =>
      b.provider.awareness.getStates().get(c.doc.clientID)?.user?.name === (env.USERNAME_EDITOR_B || 'Carol'),
    { detail: () => canonicalJson([...b.provider.awareness.getStates().keys()]) })
  })

  if (!skipPermissions) {
    await step('e_hostile_awareness', 'a raw socket sends an awareness state that is not JSON; B survives it and never sees it', hostileAwareness(b))
  }

  if (skipPermissions) {
    log('f_viewer_refused: skipped (INTEROP_SKIP_PERMISSIONS=1)')
    summary.steps.f_viewer_refused = 'skipped'
  } else {
    await step('f_viewer_refused', "a viewer's edits are refused (type 101) and never reach B", viewerChecks(a, b))
  }

  await step('e_awareness_removed', "B sees awareness removed: C's socket dropped abruptly, A's provider destroyed", async () => {
    // abrupt: no awareness goodbye from the client, the server has to notice and broadcast
    const cId = c.doc.clientID
    check(c.provider.ws && c.provider.wsconnected, `C is not connected (${connectionTrouble(c)})`)
    c.provider.shouldConnect = false // keep the provider from reconnecting
    c.provider.ws.terminate()
    await waitFor("B to see C's awareness state removed after C's socket was terminated", () =>
      !b.provider.awareness.getStates().has(cId),
    { detail: () => canonicalJson(b.provider.awareness.getStates().get(cId) ?? null) })
    // graceful: destroy() sends the client's own removal, then closes
    summary.final_text = blocksOf(a).get(narrativeId).get('content').get('text').toString()
    a.provider.destroy()
    await waitFor("B to see A's awareness state removed after A's provider was destroyed", () =>
      !b.provider.awareness.getStates().has(aClientId),
    { detail: () => canonicalJson(b.provider.awareness.getStates().get(aClientId) ?? null) })
  })

  await step('g_final_content', 'B has exactly the two blocks, the text equals A\'s; a late joiner gets the same', async () => {
    const keys = [...blocksOf(b).keys()].sort()
    check(canonicalJson(keys) === canonicalJson([chartId, narrativeId].sort()),
      `B should have exactly the two blocks, has ${JSON.stringify(keys)}`)
    const textB = blocksOf(b).get(narrativeId).get('content').get('text').toString()
    check(textB === summary.final_text, `B's text ${JSON.stringify(textB)} != A's ${JSON.stringify(summary.final_text)}`)
    const want = canonicalJson(expected)
    check(blocksJson(b) === want, `B's blocks differ from the expected content:\n  got  ${blocksJson(b)}\n  want ${want}`)
    // a fresh client gets its state from the server's document, not from relayed updates
    const late = connectClient('L', env.TOKEN_EDITOR_B)
    await waitSynced(late)
    await waitFor("a late joiner L to receive the same blocks as B", () => blocksJson(late) === want,
      { detail: () => blocksJson(late) })
    summary.final_blocks = keys.length
  })
}

/** One awareness update frame (y-protocols encoding) with a single raw state string. */
function awarenessFrame (clientId, clock, state) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, state)
  const frame = encoding.createEncoder()
  encoding.writeVarUint(frame, 1) // awareness
  encoding.writeVarUint8Array(frame, encoding.toUint8Array(inner))
  return encoding.toUint8Array(frame)
}

/**
 * Part e, hostile: y-protocols' applyAwarenessUpdate runs JSON.parse on every state, so a
 * relayed state that is not JSON throws inside B's message handler (uncaught in Node: the
 * process dies). The server must drop it; a valid state sent after it still arrives.
 */
function hostileAwareness (b) {
  return async () => {
    const raw = new WebSocket(`${serverUrl}/${canvasId}?token=${env.TOKEN_VIEWER}`)
    raw.binaryType = 'arraybuffer'
    await new Promise((resolve, reject) => { raw.once('open', resolve); raw.once('error', reject) })
    const bad = 0x5eed01
    const good = 0x5eed02
    raw.send(awarenessFrame(bad, 1, '{not json'))
    raw.send(awarenessFrame(good, 1, JSON.stringify({ user: { name: 'Owner (admin)' } })))
    await waitFor('B to see the valid state sent after the bad one', () =>
      b.provider.awareness.getStates().has(good),
    { detail: () => canonicalJson([...b.provider.awareness.getStates().keys()]) })
    check(!b.provider.awareness.getStates().has(bad), 'B received the state that is not JSON')
    const shown = b.provider.awareness.getStates().get(good)?.user?.name
    check(shown !== 'Owner (admin)', `a viewer shows up under a name it chose: ${shown}`)
    raw.close()
    await waitFor("B to see the raw socket's state removed", () =>
      !b.provider.awareness.getStates().has(good))
  }
}

/** Part f: returns the step body. */
function viewerChecks (a, b) {
  return async () => {
    const v = connectClient('V', env.TOKEN_VIEWER)
    await waitSynced(v)
    check(blocksJson(v) === canonicalJson(expected), `viewer V did not receive the document: ${blocksJson(v)}`)
    await sleep(300) // let anything the server says about V's handshake arrive first
    const refusalsBefore = v.extensions.filter((e) => e.type === MSG_REFUSED).length
    if (refusalsBefore > 0) {
      log(`warning: V got ${refusalsBefore} type-101 frame(s) before editing anything ` +
        '(its handshake sync step 2 or awareness was refused)')
    }
    const chartBefore = canonicalJson(expected[chartId].position)

    // the viewer tries: add a block (one transaction), then move an existing block
    const viewerBlockId = `viewer-block-${nonce}`
    v.doc.transact(() => {
      blocksOf(v).set(viewerBlockId, yMapFrom({
        id: viewerBlockId,
        type: 'chart',
        position: yMapFrom({ x: 0, y: 20, w: 3, h: 3 }),
        content: yMapFrom({ title: 'viewer was here' }),
        metadata: new Y.Map()
      }))
    })
    blocksOf(v).get(chartId).get('position').set('y', 40)
    const vClientId = v.doc.clientID

    let refusal
    try {
      refusal = await waitFor('a type-101 refusal frame on V after its edits', () =>
        v.extensions.filter((e) => e.type === MSG_REFUSED).slice(refusalsBefore)[0],
      { detail: () => `V frames ${canonicalJson(v.frameCounts)}; ${connectionTrouble(v)}` })
    } catch (e) {
      // say whether the edit was refused silently or leaked (as on a server without roles)
      const leaked = blocksOf(b).has(viewerBlockId) ||
        canonicalJson(blocksOf(b).get(chartId).get('position').toJSON()) !== chartBefore
      throw new CheckError(`${e.message}; the viewer's edit ${leaked ? 'DID reach B' : 'did not reach B'}`)
    }
    check(!refusal.error, `V's type-101 frame has an undecodable body: ${refusal.error}`)
    const d = refusal.decoded
    check(d.code !== undefined && d.code !== null && d.code !== '',
      `V's type-101 body has no code: ${canonicalJson(d.raw)}`)
    log(`f: server refused V's edit: code=${JSON.stringify(d.code)} message=${JSON.stringify(d.message)} ` +
      `seq=${JSON.stringify(d.seq)} (body ${d.shape}, ${d.framing})`)

    // A edits after V's refusal; once B has A's edit, V's (earlier) edits would have arrived too
    const retitled = `Sales by Region (${new Date().toISOString()})`
    blocksOf(a).get(chartId).get('content').set('title', retitled)
    expected[chartId].content.title = retitled
    await waitFor("B to receive A's edit made after V's refused edits", () =>
      blocksOf(b).get(chartId).get('content').get('title') === retitled)
    await sleep(500)

    for (const c of [a, b]) {
      check(!blocksOf(c).has(viewerBlockId), `${c.name} received the viewer's block ${viewerBlockId}`)
      const pos = canonicalJson(blocksOf(c).get(chartId).get('position').toJSON())
      check(pos === chartBefore, `${c.name} received the viewer's move: chart position ${pos}, want ${chartBefore}`)
      check(!Y.decodeStateVector(Y.encodeStateVector(c.doc)).has(vClientId),
        `${c.name}'s document holds operations from the viewer's client id ${vClientId}`)
    }
    const allRefusals = v.extensions.filter((e) => e.type === MSG_REFUSED)
    summary.refusal = {
      code: d.code,
      message: d.message ?? null,
      seq: d.seq ?? null,
      body_shape: d.shape,
      framing: d.framing,
      frames: allRefusals.length,
      before_edit: refusalsBefore,
      viewer_closes: v.closes
    }
    v.provider.destroy()
  }
}

main().then(() => {
  clearTimeout(overallTimer)
  finish(true, null)
}, (e) => {
  clearTimeout(overallTimer)
  finish(false, e instanceof CheckError ? e.message : (e?.stack || String(e)))
})
