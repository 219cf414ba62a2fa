#!/usr/bin/env node
// Bound blocks benchmark (issue 14, item 8). Run by scripts/bench-bound.sh, which builds the
// release canvas-server and passes --server. In one invocation, against one fresh server
// (embedded default):
//
//   1. Fan-out: 50 WebSocket clients in one room whose chart is bound to a query over an
//      uploaded CSV. Each refresh (POST /canvases/{id}/blocks/{block}/refresh, a fresh
//      execution) must reach every client as message 102; per client the delay is its
//      receive time minus the result's `computed_at` (one clock: same machine). Reported:
//      p50/p99/max over every (refresh, client), and executions per refresh (the
//      `canvas_query_executions_total` counter before/after, from /metrics).
//   2. Join cost: joins to a canvas with two bound blocks (results in the cache, room
//      loaded: an observer stays connected) against joins to an unbound canvas, alternating.
//      A join is done when sync step 2 arrived and, for the bound canvas, a 102 for each
//      bound block. Reported: medians and p99, and the difference.
//   3. Memory per result held: 20 canvases made from the sales template over a source of R
//      rows and R regions (R = 100, 1,000, 10,000), so the bound chart and table hold R
//      rows each (the room keeps the latest result of each, capped at 1,000 rows, for
//      joiners), each kept loaded by a connection; server RSS (/proc) before and after the
//      joins, per canvas, against the size of the table's 102 body.
// Prints a Markdown table and one JSON line last.

import { createRequire } from 'node:module'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(path.join(root, 'tests/js/package.json'))
const WebSocket = require('ws')
const { decode, encode } = require('@msgpack/msgpack')

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]])
    return acc
  }, [])
)
const SERVER = args.server
const CLIENTS = Number(args.clients ?? 50)
const REFRESHES = Number(args.refreshes ?? 30)
const JOINS = Number(args.joins ?? 40)
if (!SERVER) throw new Error('--server BIN is required')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const median = (xs) => quantile(xs, 0.5)
const fmt = (ms) => `${ms.toFixed(2)} ms`

async function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function waitUntil (what, pred, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await pred()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

// `rows` rows over `groups` distinct regions.
function csv (rows, groups) {
  const lines = ['date,region,sales_amount']
  for (let i = 0; i < rows; i++) {
    const day = String(1 + (i % 28)).padStart(2, '0')
    lines.push(`2024-01-${day},region-${i % groups},${(i * 37) % 1000}`)
  }
  return lines.join('\n') + '\n'
}

class Api {
  constructor (base) { this.base = base; this.token = null }
  async call (method, p, body, type = 'application/json') {
    const headers = { 'content-type': type }
    if (this.token) headers.authorization = `Bearer ${this.token}`
    const res = await fetch(this.base + p, {
      method,
      headers,
      body: body === undefined ? undefined : (type === 'application/json' ? JSON.stringify(body) : body)
    })
    const text = await res.text()
    let json = null
    try { json = JSON.parse(text) } catch {}
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`)
    return json ?? text
  }
}

// A raw y-websocket client: answers nothing, records frames by type.
class Client {
  constructor (url) {
    this.ws = new WebSocket(url)
    this.ws.binaryType = 'nodebuffer'
    this.synced = false
    this.data = new Map() // block -> latest 102 body
    this.listeners = new Set()
    this.onMessage = null // called after each frame is handled
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('error', reject)
    })
    this.ws.on('message', (buf) => {
      const at = performance.timeOrigin + performance.now()
      const type = buf[0]
      if (type === 0 && buf[1] === 1) this.synced = true
      if (type === 102) {
        // the type, then the MessagePack body as a lib0 varUint8Array (length-prefixed)
        let len = 0
        let mult = 1
        let i = 1
        for (; i < buf.length; i++) {
          len += (buf[i] & 0x7f) * mult
          mult *= 128
          if (buf[i] < 0x80) { i++; break }
        }
        const body = decode(buf.subarray(i, i + len))
        this.data.set(body.block_id, body)
        for (const l of this.listeners) l(body, at)
      }
      if (this.onMessage) this.onMessage()
    })
    // sync step 1 with an empty state vector: the server answers with step 2 (the document)
    this.opened.then(() => this.ws.send(Buffer.from([0, 0, 1, 0])), () => {})
  }

  close () { this.ws.close() }
}

async function main () {
  const port = await freePort()
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-bound-'))
  const server = spawn(SERVER, [
    '--bind', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rest-rate-limit', '1000000',
    '--ws-rate-limit', '10000000', '--execute-wait-ms', '600000', '--log', 'warn'
  ], { stdio: ['ignore', 'ignore', 'inherit'] })
  const stop = () => { try { server.kill('SIGKILL') } catch {} }
  process.on('exit', () => { stop(); fs.rmSync(dataDir, { recursive: true, force: true }) })
  const base = `http://127.0.0.1:${port}`
  const api = new Api(`${base}/api/v1`)
  await waitUntil('the server', async () => {
    try { return (await fetch(`${base}/healthz`)).ok } catch { return false }
  })
  const me = await api.call('POST', '/auth/signup', {
    email: 'bench@example.com', username: 'bench', password: 'correct horse battery'
  })
  api.token = me.token
  const project = (await api.call('POST', '/projects', { name: 'bench' })).id
  const source = async (name, rows, groups) => {
    const s = await api.call('POST', `/projects/${project}/data-sources`, { name, type: 'file' })
    await api.call('PUT', `/data-sources/${s.id}/file`, csv(rows, groups), 'text/csv')
    return s.id
  }
  const wsUrl = (canvas) => `ws://127.0.0.1:${port}/ws/${canvas}?token=${me.token}`
  const executions = async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    return text.split('\n')
      .filter((l) => l.startsWith('canvas_query_executions_total'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0)
  }
  const rss = () => {
    const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024
  }

  // 1. Fan-out to CLIENTS connections.
  const sales = await source('sales', 5000, 20)
  const board = (await api.call('POST', `/projects/${project}/canvases`, {
    name: 'fan-out', template_id: 'sales-dashboard', data_source_id: sales
  })).id
  const clients = Array.from({ length: CLIENTS }, () => new Client(wsUrl(board)))
  await Promise.all(clients.map((c) => c.opened))
  // both bound blocks computed before counting executions
  await waitUntil('every client has the chart and the table', () => clients.every((c) =>
    c.data.get('sales_chart')?.status === 'completed' && c.data.get('sales_table')?.status === 'completed'))
  const delays = []
  const perRefresh = []
  const before = await executions()
  for (let r = 0; r < REFRESHES; r++) {
    const previous = clients.map((c) => c.data.get('sales_chart').execution_id)
    const got = clients.map((c, i) => new Promise((resolve) => {
      const l = (body, at) => {
        if (body.block_id === 'sales_chart' && body.status === 'completed' && body.execution_id !== previous[i]) {
          c.listeners.delete(l)
          resolve(at - Date.parse(body.computed_at))
        }
      }
      c.listeners.add(l)
    }))
    const execBefore = await executions()
    await api.call('POST', `/canvases/${board}/blocks/sales_chart/refresh`)
    const ds = await Promise.race([Promise.all(got), sleep(30000).then(() => { throw new Error('a refresh did not reach every client') })])
    delays.push(...ds)
    await waitUntil('the execution counted', async () => (await executions()) > execBefore, 5000)
    perRefresh.push((await executions()) - execBefore)
  }
  const after = await executions()
  for (const c of clients) c.close()

  // 2. Join cost, bound vs unbound, rooms loaded and results cached.
  const bound = board
  const unbound = (await api.call('POST', `/projects/${project}/canvases`, { name: 'plain', template_id: 'blank-report' })).id
  const keep = [new Client(wsUrl(bound)), new Client(wsUrl(unbound))]
  await Promise.all(keep.map((c) => c.opened))
  await waitUntil('observers synced', () => keep.every((c) => c.synced) && keep[0].data.size >= 2)
  const join = async (canvas, blocks) => {
    const t0 = performance.now()
    const c = new Client(wsUrl(canvas))
    // timed at the frame that completes the join (no polling interval in the figure)
    const done = () => c.synced && blocks.every((b) => c.data.get(b)?.status === 'completed')
    const ms = await Promise.race([
      new Promise((resolve) => { c.onMessage = () => { if (done()) resolve(performance.now() - t0) } }),
      sleep(10000).then(() => { throw new Error('a join did not complete') })
    ])
    c.close()
    return ms
  }
  const joinBound = []
  const joinPlain = []
  for (let i = 0; i < JOINS + 2; i++) {
    const b = await join(bound, ['sales_chart', 'sales_table'])
    const p = await join(unbound, [])
    if (i >= 2) { joinBound.push(b); joinPlain.push(p) }
  }
  for (const c of keep) c.close()

  // 3. Memory per room holding a bound table's result.
  const memory = []
  for (const rows of [100, 1000, 10000]) {
    // as many regions as rows: the chart and the table have `rows` rows each
    const src = await source(`t${rows}`, rows, rows)
    const canvases = []
    for (let i = 0; i < 20; i++) {
      canvases.push((await api.call('POST', `/projects/${project}/canvases`, {
        name: `m${rows}-${i}`, template_id: 'sales-dashboard', data_source_id: src
      })).id)
    }
    global.gc?.()
    await sleep(500)
    const rssBefore = rss()
    const holders = canvases.map((id) => new Client(wsUrl(id)))
    await Promise.all(holders.map((c) => c.opened))
    await waitUntil('the tables', () => holders.every((c) => c.data.get('sales_table')?.status === 'completed'), 60000)
    await sleep(500)
    const rssAfter = rss()
    const total = holders[0].data.get('sales_table').total_rows
    const sent = encode(holders[0].data.get('sales_table')).length
    memory.push({ rows, total_rows: total, body_bytes: sent, rss_per_canvas: (rssAfter - rssBefore) / canvases.length })
    for (const c of holders) c.close()
  }

  const summary = {
    clients: CLIENTS,
    refreshes: REFRESHES,
    fanout_ms: { p50: median(delays), p99: quantile(delays, 0.99), max: Math.max(...delays) },
    executions_per_refresh: { min: Math.min(...perRefresh), max: Math.max(...perRefresh), total: after - before },
    join_ms: {
      bound: { p50: median(joinBound), p99: quantile(joinBound, 0.99) },
      unbound: { p50: median(joinPlain), p99: quantile(joinPlain, 0.99) }
    },
    memory
  }
  console.log(`| fan-out of a refresh to ${CLIENTS} clients (${REFRESHES} refreshes) | p50 ${fmt(summary.fanout_ms.p50)} | p99 ${fmt(summary.fanout_ms.p99)} | max ${fmt(summary.fanout_ms.max)} |`)
  console.log(`| executions per refresh | min ${summary.executions_per_refresh.min} | max ${summary.executions_per_refresh.max} | total ${summary.executions_per_refresh.total} for ${REFRESHES} |`)
  console.log(`| join, 2 bound blocks (cached) | p50 ${fmt(summary.join_ms.bound.p50)} | p99 ${fmt(summary.join_ms.bound.p99)} | |`)
  console.log(`| join, unbound canvas | p50 ${fmt(summary.join_ms.unbound.p50)} | p99 ${fmt(summary.join_ms.unbound.p99)} | added p50 ${fmt(summary.join_ms.bound.p50 - summary.join_ms.unbound.p50)} |`)
  for (const m of memory) {
    console.log(`| ${m.rows} source rows (${m.total_rows} in the table's result) | RSS per canvas ${(m.rss_per_canvas / 1024).toFixed(1)} KiB | 102 body ${(m.body_bytes / 1024).toFixed(1)} KiB | |`)
  }
  console.log(JSON.stringify(summary))
  stop()
  process.exit(0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
