// The SDK against the real canvas-server binary (started per test suite, see lib/server.mjs).
// Run after `npm run build` (these tests import the built dist/): `npm test`.

import { test, describe, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { CanvasClient, ConnectionStatus, SaveTracker, backoffDelay, isCanvasError } from '../dist/index.js'
import { startServer, removeDataDir } from './lib/server.mjs'
import { WAIT_MS, closeTracked, converged, newUser, until, next, pos, team, track } from './lib/util.mjs'

describe('SaveTracker', () => {
  test('maps acknowledged message numbers back to local changes', () => {
    const t = new SaveTracker()
    t.localChange()
    t.localChange()
    assert.equal(t.unsavedChanges, 2)
    assert.equal(t.sent(), 1) // step 2 carrying both
    t.localChange()
    assert.equal(t.sent(), 2) // one update
    assert.equal(t.unsavedChanges, 3)
    t.ack(1)
    assert.equal(t.unsavedChanges, 1)
    t.connectionLost() // message 2 never acknowledged: unsent again, numbering restarts
    assert.equal(t.unsavedChanges, 1)
    assert.equal(t.sent(), 1)
    t.ack(1)
    assert.equal(t.unsavedChanges, 0)
  })
})

describe('backoffDelay', () => {
  test('doubles up to the cap, with jitter between half and all of it', () => {
    const opts = { initialMs: 100, maxMs: 1000 }
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, opts, 0)), [50, 100, 200, 400, 500, 500])
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, opts, 0.999999)).map(Math.round), [100, 200, 400, 800, 1000, 1000])
    assert.equal(backoffDelay(0, {}, 0.5), 187.5) // defaults: 250 ms first, 10 s at most
  })
})

describe('SDK against canvas-server', () => {
  let server
  before(async () => { server = await startServer() })
  afterEach(closeTracked)
  after(async () => {
    await server.stop()
    removeDataDir(server.dataDir)
  })

  test('REST: signup, login, projects, canvases, typed errors', async () => {
    const a = await newUser(server.url, 'rest')
    const me = await a.client.me()
    assert.equal(me.id, a.user.id)
    const project = await a.client.createProject({ name: 'P', description: 'd' })
    assert.equal(project.role, 'owner')
    assert.deepEqual((await a.client.listProjects()).map((p) => p.id), [project.id])
    const canvas = await a.client.createCanvas(project.id, { name: 'C', tags: ['q4'] })
    assert.deepEqual((await a.client.listCanvases(project.id)).map((c) => c.id), [canvas.id])
    const json = await a.client.getCanvas(canvas.id)
    assert.equal(json.name, 'C')
    assert.deepEqual(json.blocks, [])
    assert.equal(json.layout.columns, 12)

    await assert.rejects(a.client.getCanvas('00000000-0000-4000-8000-000000000000'),
      (err) => isCanvasError(err, 'not_found') && err.info.source === 'http' && err.info.status === 404)
    await assert.rejects(a.client.createProject({ name: '   ' }),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'invalid_name')

    // a second login is a second session; logging out ends only the current one
    const other = new CanvasClient({ baseUrl: server.url })
    await other.login(a.email, a.password)
    await a.client.logout()
    assert.equal(a.client.token, null)
    await assert.rejects(a.client.me(), (err) => isCanvasError(err, 'unauthorized'))
    assert.equal((await other.me()).id, a.user.id)
    await assert.rejects(other.login(a.email, 'wrong password'), (err) => isCanvasError(err, 'unauthorized'))
  })

  test('token refresh hook: a rejected token is replaced and the call retried', async () => {
    const a = await newUser(server.url, 'refresh')
    let asked = 0
    const tokens = []
    const client = new CanvasClient({
      baseUrl: server.url,
      WebSocket,
      token: 'not-a-valid-token',
      onTokenChange: (t) => tokens.push(t),
      onTokenExpired: async (c) => {
        asked += 1
        return (await new CanvasClient({ baseUrl: c.baseUrl }).login(a.email, a.password)).token
      }
    })
    assert.equal((await client.me()).id, a.user.id)
    assert.equal(asked, 1)
    assert.equal(tokens.length, 1)

    // the same hook serves a live canvas closed with 4401
    const project = await client.createProject({ name: 'R' })
    const { id } = await client.createCanvas(project.id, { name: 'R' })
    client.setToken('expired-again')
    const canvas = track(client.openCanvas(id))
    await canvas.whenSynced()
    assert.equal(asked, 2)
    canvas.close()
  })

  test('two clients converge: add, move, resize, type, remove', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    assert.equal(a.status, ConnectionStatus.Synced)

    const seenByB = []
    b.on('blocks', (changes) => seenByB.push(...changes))
    const id = a.addBlock({ type: 'narrative', position: pos(0, 0, 6, 4), content: { text: 'Hello' } })
    const chart = a.addBlock({
      id: 'chart_1',
      type: 'chart',
      position: pos(6, 0, 6, 4),
      content: { chart_type: 'bar', title: 'Sales', rows: [{ region: 'N', total: 3 }] }
    })
    await until(() => b.block(id) && b.block(chart), b, ['blocks'])
    assert.deepEqual(seenByB.filter((c) => c.id === id)[0], { id, kind: 'added', local: false })
    assert.equal(b.block(id).content.text, 'Hello')
    assert.deepEqual(b.block(chart).content.rows, [{ region: 'N', total: 3 }])
    assert.deepEqual(b.block(id).metadata !== null, true)

    b.moveBlock(id, 0, 4)
    a.resizeBlock(chart, 4, 5)
    // concurrent typing into one narrative block
    a.insertText(id, 5, ', world')
    b.text(id).insert(0, '>> ')
    await until(() => {
      const ba = a.block(id); const bb = b.block(id)
      return ba.position.y === 4 && b.block(chart).position.w === 4 &&
        ba.content.text === bb.content.text && ba.content.text.length === '>> Hello, world'.length
    }, a, ['blocks'])
    assert.equal(a.block(id).content.text, '>> Hello, world')
    assert.deepEqual(a.blocks().map((x) => x.id), [chart, id]) // ordered by row, then column
    // the same blocks, metadata included: the server's stamps may reach one client first
    await converged(a, b)

    assert.throws(() => a.moveBlock(chart, 10, 0), (err) => isCanvasError(err, 'invalid_argument'))
    assert.throws(() => a.moveBlock('nope', 0, 0), (err) => isCanvasError(err, 'invalid_argument'))

    b.removeBlock(chart)
    await until(() => a.block(chart) === undefined, a, ['blocks'])
    await Promise.all([a.whenSaved(), b.whenSaved()])
    const json = await owner.client.getCanvas(canvasId)
    assert.deepEqual(json.blocks.map((x) => x.id), [id])
    assert.equal(json.blocks[0].content.text, '>> Hello, world')
    a.close()
    b.close()
  })

  test('an unmodified y-websocket client shares the document with the SDK', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    await a.whenSynced()
    const doc = track(new Y.Doc())
    const provider = track(new WebsocketProvider(`${editor.client.wsUrl}/ws`, canvasId, doc, {
      params: { token: editor.client.token }, WebSocketPolyfill: WebSocket, disableBc: true
    }))
    await until(() => provider.synced, null)
    a.addBlock({ id: 'from_sdk', type: 'narrative', position: pos(0, 0, 6, 4), content: { text: 'sdk' } })
    const blocks = doc.getMap('blocks')
    await until(() => blocks.get('from_sdk')?.get('content')?.get('text')?.toString() === 'sdk', null)
    // the plain client edits the SDK's text and adds a block the way the README shows
    doc.transact(() => {
      blocks.get('from_sdk').get('content').get('text').insert(3, '+yjs')
      const block = new Y.Map()
      blocks.set('from_yjs', block)
      block.set('id', 'from_yjs')
      block.set('type', 'chart')
      block.set('position', new Y.Map([['x', 6], ['y', 0], ['w', 6], ['h', 4]]))
      block.set('content', new Y.Map([['title', 'plain']]))
    })
    await until(() => a.block('from_yjs') && a.block('from_sdk').content.text === 'sdk+yjs', a, ['blocks'])
    assert.deepEqual(a.block('from_yjs').content, { title: 'plain' })
  })

  test('meta, layout and sharing are read from the document; sharing changes are events', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    assert.deepEqual(b.meta(), { name: 'Board', description: null, project_id: b.meta().project_id, owner_id: owner.user.id, tags: [] })
    assert.equal(b.columns, 12)
    assert.equal(b.rowHeight, 50)
    assert.deepEqual(b.sharing(), {
      visibility: 'private', permissions: [], public_link: null, embed_settings: { enabled: false, allowed_domains: [] }
    })
    // the owner may change sharing (an editor may not); peers get a typed event
    const changed = next(b, 'sharing')
    a.batch(() => {
      const sharing = a.doc.getMap('sharing')
      sharing.set('visibility', 'team')
      const grant = new Y.Map([['role', 'viewer'], ['granted_by', owner.user.id]])
      sharing.get('permissions').set('00000000-0000-4000-8000-000000000001', grant)
    })
    await changed
    await until(() => b.sharing().permissions.length === 1, b, ['sharing'])
    assert.equal(b.sharing().visibility, 'team')
    assert.deepEqual(b.sharing().permissions, [{ user_id: '00000000-0000-4000-8000-000000000001', role: 'viewer', granted_by: owner.user.id }])
    await a.whenSaved()
    a.close()
    b.close()
  })

  test('save state: unsaved changes count down to a saved event, and are durable', async () => {
    const { owner, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    await a.whenSynced()
    const states = []
    a.on('save-state', (s) => states.push(s.unsavedChanges))
    const saved = next(a, 'saved')
    const id = a.addBlock({ type: 'table', position: pos(0, 0, 12, 3), content: { columns: [{ field: 'p', header: 'P', type: 'string' }], rows: [] } })
    a.setContent(id, 'rows', [{ p: 'x' }])
    assert.ok(a.unsavedChanges >= 1, 'edits count as unsaved until acknowledged')
    await saved
    assert.equal(a.unsavedChanges, 0)
    assert.ok(Math.max(...states) >= 1)
    assert.equal(states.at(-1), 0)
    const json = await owner.client.getCanvas(canvasId)
    assert.deepEqual(json.blocks[0].content.rows, [{ p: 'x' }])
    a.close()
  })

  test('undo and redo revert only the local user\'s edits', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId, { undoCaptureTimeoutMs: 0 }))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    const mine = a.addBlock({ id: 'mine', type: 'chart', position: pos(0, 0, 4, 4) })
    a.stopCapturing()
    a.moveBlock(mine, 4, 0)
    await until(() => b.block(mine)?.position.x === 4, b, ['blocks'])
    const theirs = b.addBlock({ id: 'theirs', type: 'chart', position: pos(0, 4, 4, 4) })
    await until(() => a.block(theirs), a, ['blocks'])

    assert.ok(a.canUndo())
    assert.equal(a.undo(), true) // the move
    assert.equal(a.block(mine).position.x, 0)
    assert.ok(a.block(theirs), 'the other user\'s block stays')
    assert.equal(a.undo(), true) // the add
    assert.equal(a.block(mine), undefined)
    assert.equal(a.undo(), false)
    assert.equal(a.redo(), true)
    assert.ok(a.block(mine))
    await until(() => b.block(mine) && b.block(mine).position.x === 0 && b.block(theirs), b, ['blocks'])
    a.close()
    b.close()
  })

  test('presence: user info and cursors reach peers and the REST listing; leaving clears them', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    // one awareness update (the server stores presence at most once a second per user)
    a.presence.update({
      user: { id: owner.user.id, name: 'Ann', color: '#e91e63' },
      cursor: { x: 120, y: 80, block: null },
      selection: ['block_1']
    })
    const peers = await until(() => {
      const p = b.presence.peers()
      return p.length === 1 && p[0].cursor?.x === 120 && p[0].selection ? p : null
    }, b.presence, ['change'])
    // The server shows everyone under their own name, whatever their state says.
    assert.equal(peers[0].user.name, owner.user.username)
    assert.equal(peers[0].user.color, '#e91e63')
    assert.equal(peers[0].clientId, a.presence.clientId)

    const listed = await (async () => {
      const deadline = Date.now() + WAIT_MS
      for (;;) {
        const res = await editor.client.getPresence(canvasId)
        const entry = res.presence.find((p) => p.user_id === owner.user.id)
        if (entry && entry.cursor && entry.cursor.x === 120) return entry
        assert.ok(Date.now() < deadline, `the REST presence listing still lacks the cursor: ${JSON.stringify(res.presence)}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    assert.deepEqual(listed.selection, ['block_1'])

    a.presence.setCursor({ x: 5, y: 6, block: 'block_1' })
    await until(() => b.presence.peers()[0]?.cursor?.x === 5, b.presence, ['change'])
    a.close()
    await until(() => b.presence.peers().length === 0, b.presence, ['change'])
    b.close()
  })

  test('a viewer\'s edit is refused and the viewer resyncs to the server\'s document', async () => {
    const { owner, viewer, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    const v = track(viewer.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), v.whenSynced()])
    a.addBlock({ id: 'kept', type: 'chart', position: pos(0, 0, 6, 4) })
    await until(() => v.block('kept'), v, ['blocks'])

    const refused = next(v, 'refused')
    const resynced = next(v, 'resync')
    const oldDoc = v.doc
    v.addBlock({ id: 'sneaky', type: 'chart', position: pos(6, 0, 6, 4) })
    assert.ok(v.block('sneaky'), 'applied locally at first')
    const [error, refusal] = await refused
    assert.ok(isCanvasError(error, 'update_refused'))
    assert.equal(error.info.refusal, 'read_only')
    assert.equal(refusal.code, 'read_only')
    await resynced
    assert.notEqual(v.doc, oldDoc)
    await v.whenSynced()
    assert.equal(v.block('sneaky'), undefined, 'the refused block is gone from the viewer\'s view')
    assert.ok(v.block('kept'))
    assert.equal(v.unsavedChanges, 0)

    // the viewer keeps receiving live edits after the resync
    a.addBlock({ id: 'later', type: 'narrative', position: pos(0, 4, 12, 2), content: { text: 'x' } })
    await until(() => v.block('later'), v, ['blocks'])
    assert.equal((await owner.client.getCanvas(canvasId)).blocks.some((b) => b.id === 'sneaky'), false)
    a.close()
    v.close()
  })

  test('permanent close codes stop retrying with a typed error', async () => {
    const { owner, canvasId } = await team(server.url)
    const stranger = await newUser(server.url, 'stranger')

    const bad = track(new CanvasClient({ baseUrl: server.url, WebSocket, token: 'bogus' }).openCanvas(canvasId))
    const [e401] = await next(bad, 'error')
    assert.ok(isCanvasError(e401, 'unauthorized') && e401.info.source === 'socket' && e401.info.closeCode === 4401)
    assert.equal(bad.status, ConnectionStatus.Offline)
    assert.equal(bad.connection.reconnectPending, false)
    await assert.rejects(bad.whenSynced(), (err) => isCanvasError(err, 'unauthorized'))
    bad.close()

    const notMine = track(stranger.client.openCanvas(canvasId))
    const [e403] = await next(notMine, 'error')
    assert.ok(isCanvasError(e403, 'forbidden') && e403.info.closeCode === 4403)
    assert.equal(notMine.connection.reconnectPending, false)
    notMine.close()

    const missing = track(owner.client.openCanvas('00000000-0000-4000-8000-000000000000'))
    const [e404] = await next(missing, 'error')
    assert.ok(isCanvasError(e404, 'not_found') && e404.info.closeCode === 4404)
    assert.equal(missing.connection.reconnectPending, false)
    missing.close()

    // removing a member closes their open canvas with 4403 at once (live revocation)
    const member = await newUser(server.url, 'member')
    const project = await owner.client.createProject({ name: 'Revocation' })
    await owner.client.addMember(project.id, { email: member.email, role: 'editor' })
    const revokedCanvas = await owner.client.createCanvas(project.id, { name: 'R' })
    const theirs = track(member.client.openCanvas(revokedCanvas.id))
    await theirs.whenSynced()
    const revoked = next(theirs, 'error')
    await owner.client.removeMember(project.id, member.user.id)
    const [eRevoked] = await revoked
    assert.ok(isCanvasError(eRevoked, 'forbidden') && eRevoked.info.closeCode === 4403)
    assert.equal(theirs.connection.reconnectPending, false)
    theirs.close()

    // deleting an open canvas closes it with 4404
    const open = track(owner.client.openCanvas(canvasId))
    await open.whenSynced()
    const gone = next(open, 'error')
    await owner.client.deleteCanvas(canvasId)
    const [eDeleted] = await gone
    assert.ok(isCanvasError(eDeleted, 'not_found'))
    assert.equal(open.connection.reconnectPending, false)
    open.close()
  })
})

describe('reconnect', () => {
  afterEach(closeTracked)

  test('after the server restarts, edits made offline are sent and saved', async () => {
    let server = await startServer()
    const { port, dataDir } = server
    try {
      const { owner, editor, canvasId } = await team(server.url)
      const a = track(owner.client.openCanvas(canvasId))
      await a.whenSynced()
      a.addBlock({ id: 'before', type: 'chart', position: pos(0, 0, 6, 4) })
      await a.whenSaved()

      const offline = until(() => a.status === ConnectionStatus.Offline, a, ['status'])
      await server.stop()
      await offline
      assert.ok(a.connection.reconnectPending || a.status !== ConnectionStatus.Offline, 'it keeps trying')
      a.addBlock({ id: 'offline', type: 'narrative', position: pos(6, 0, 6, 4), content: { text: 'typed offline' } })
      a.moveBlock('before', 0, 4)
      assert.ok(a.unsavedChanges >= 2)

      server = await startServer({ port, dataDir })
      await a.whenSynced()
      await a.whenSaved()
      const b = track(editor.client.openCanvas(canvasId))
      await b.whenSynced()
      assert.equal(b.block('offline')?.content.text, 'typed offline')
      assert.equal(b.block('before')?.position.y, 4)
      a.close()
      b.close()
    } finally {
      await server.stop()
      removeDataDir(dataDir)
    }
  })
})
