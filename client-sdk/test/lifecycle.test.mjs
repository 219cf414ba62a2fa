// The SDK's lifecycle methods against the real canvas-server binary: version history and
// restores (seen live by a second client), templates, sharing (grants, public links),
// favorites and archiving. Run after `npm run build` (these tests import the built dist/).

import { test, describe, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { CanvasClient, ConnectionStatus, isCanvasError } from '../dist/index.js'
import { startServer, removeDataDir } from './lib/server.mjs'
import { closeTracked, newUser, until, next, pos, team, track, waitFor } from './lib/util.mjs'

/**
 * Resolves with the first of several outcomes: `{ name, args }` of whichever `[name, emitter,
 * event, check]` fires first with `check(...args)` true. Listeners are removed afterwards, so
 * no watcher outlives the test.
 */
function firstOf (outcomes) {
  return waitFor(`one of ${outcomes.map(([name]) => name).join(', ')}`, (resolve) => {
    const offs = outcomes.map(([name, emitter, event, check]) => emitter.on(event, (...args) => {
      if (check(...args)) resolve({ name, args })
    }))
    return () => offs.forEach((off) => off())
  })
}

/** Expects `promise` to reject with a CanvasError of `code` (and `serverCode`, if given). */
async function rejectsWith (promise, code, serverCode) {
  await assert.rejects(promise, (err) => {
    assert.ok(isCanvasError(err, code), `expected ${code}, got ${err?.info?.code ?? err}: ${err?.message}`)
    if (serverCode !== undefined) assert.equal(err.info.serverCode, serverCode)
    return true
  })
}

describe('lifecycle methods against canvas-server', () => {
  let server
  before(async () => { server = await startServer() })
  afterEach(closeTracked)
  after(async () => {
    await server.stop()
    removeDataDir(server.dataDir)
  })

  test('versions: name, list, read, diff, restore (seen live by a second client), block restore', async () => {
    const { owner, editor, viewer, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.addBlock({ id: 'keep', type: 'chart', position: pos(0, 0, 6, 4), content: { title: 'Sales' } })
    a.addBlock({ id: 'gone', type: 'narrative', position: pos(6, 0, 6, 4), content: { text: 'Q4 notes' } })
    await a.whenSaved()

    const named = await owner.client.createVersion(canvasId, 'Before cleanup')
    assert.equal(named.kind, 'named')
    assert.equal(named.changes, 'Before cleanup')
    assert.equal(named.changed_by, owner.user.id)
    const listed = await editor.client.listVersions(canvasId)
    assert.deepEqual(listed.map((v) => [v.version, v.kind]), [[named.version, 'named'], [1, 'initial']])
    assert.deepEqual(listed[0], named)

    // the cleanup: one block removed, the other moved and retitled
    a.removeBlock('gone')
    a.moveBlock('keep', 0, 4)
    a.setContent('keep', 'title', 'Sales (draft)')
    await a.whenSaved()
    await until(() => b.block('gone') === undefined && b.block('keep')?.position.y === 4, b, ['blocks'])

    const old = await viewer.client.getVersion(canvasId, named.version)
    assert.equal(old.version, named.version)
    assert.deepEqual(old.blocks.map((x) => x.id).sort(), ['gone', 'keep'])
    assert.deepEqual(old.metadata.version_history.map((v) => v.version), [1, named.version])
    const toLive = await viewer.client.diffVersions(canvasId, named.version)
    assert.equal(toLive.from, named.version)
    assert.equal(toLive.to, null)
    assert.deepEqual(toLive.added, [])
    assert.deepEqual(toLive.removed, ['gone'])
    assert.deepEqual(toLive.moved, [{ id: 'keep', from: pos(0, 0, 6, 4), to: pos(0, 4, 6, 4) }])
    assert.deepEqual(toLive.content_changed, ['keep'])
    const between = await viewer.client.diffVersions(canvasId, 1, named.version)
    assert.equal(between.to, named.version)
    assert.deepEqual(between.added, ['gone', 'keep'])

    // a whole restore is a live change: the second client sees the block come back
    const restored = await editor.client.restoreVersion(canvasId, named.version)
    assert.equal(restored.version.kind, 'restore')
    assert.equal(restored.version.changed_by, editor.user.id)
    assert.ok(restored.version.version > named.version)
    assert.deepEqual(restored.canvas.blocks.map((x) => x.id).sort(), ['gone', 'keep'])
    await until(() => a.block('gone')?.content.text === 'Q4 notes' && a.block('keep')?.position.y === 0 &&
      a.block('keep')?.content.title === 'Sales', a, ['blocks'])
    await until(() => b.block('gone') && b.block('keep')?.position.y === 0, b, ['blocks'])
    assert.equal(a.text('gone').toString(), 'Q4 notes', 'the narrative is a shared text again')
    assert.equal((await owner.client.listVersions(canvasId))[0].version, restored.version.version)

    // one block: removed again, then brought back alone
    b.removeBlock('gone')
    b.moveBlock('keep', 6, 0)
    await b.whenSaved()
    await until(() => a.block('gone') === undefined, a, ['blocks'])
    const one = await owner.client.restoreBlock(canvasId, named.version, 'gone')
    assert.equal(one.block.id, 'gone')
    assert.deepEqual(one.block.position, pos(6, 0, 6, 4))
    assert.equal(one.version.kind, 'restore')
    await until(() => b.block('gone')?.content.text === 'Q4 notes', b, ['blocks'])
    assert.equal(b.block('keep').position.x, 6, 'the other block keeps its later position')

    // errors are typed
    await rejectsWith(owner.client.restoreBlock(canvasId, named.version, 'nope'), 'not_found')
    await rejectsWith(owner.client.getVersion(canvasId, 999), 'not_found')
    await rejectsWith(owner.client.restoreVersion(canvasId, 999), 'not_found')
    await rejectsWith(owner.client.createVersion(canvasId, '   '), 'invalid_request', 'invalid_changes')
    await rejectsWith(viewer.client.createVersion(canvasId, 'mine'), 'forbidden')
    await rejectsWith(viewer.client.restoreVersion(canvasId, named.version), 'forbidden')
    a.close()
    b.close()
  })

  test('undo of a block removal brings the block back for everyone', async () => {
    // The server stamps block metadata; a Y.UndoManager re-creating a removed block re-creates
    // its metadata too. The server is to accept that and re-stamp it (engine change pending).
    const { owner, editor, canvasId } = await team(server.url)
    const a = track(owner.client.openCanvas(canvasId, { undoCaptureTimeoutMs: 0 }))
    const b = track(editor.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.addBlock({ id: 'undone', type: 'narrative', position: pos(0, 0, 6, 4), content: { text: 'keep me' } })
    // both have the server's stamp, so the removal (and its undo) covers the stamped metadata
    await until(() => b.block('undone')?.metadata?.created_by === owner.user.id, b, ['blocks'])
    await until(() => a.block('undone')?.metadata?.created_by === owner.user.id, a, ['blocks'])
    a.stopCapturing()
    a.removeBlock('undone')
    await a.whenSaved()
    await until(() => b.block('undone') === undefined, b, ['blocks'])

    // no await between the undo and the listeners: B cannot have heard of it yet
    assert.equal(a.undo(), true)
    assert.equal(a.block('undone')?.content.text, 'keep me')
    const outcome = await firstOf([
      ['back', b, 'blocks', () => b.block('undone') !== undefined],
      ['refused', a, 'refused', () => true]
    ])
    assert.equal(outcome.name, 'back',
      `the undo was refused: ${outcome.args[0]?.message ?? ''}`)
    await a.whenSaved()
    assert.equal(b.block('undone').content.text, 'keep me')
    assert.equal((await owner.client.getCanvas(canvasId)).blocks.some((x) => x.id === 'undone'), true)
  })

  test('templates: built-ins, a canvas from a template, a template from a canvas', async () => {
    const { owner, editor, project, canvasId } = await team(server.url)
    const templates = await owner.client.listTemplates()
    const builtin = templates.find((t) => t.id === 'sales-dashboard')
    assert.ok(builtin, 'the built-in sales dashboard is listed')
    assert.equal(builtin.created_by, 'system')
    assert.equal(builtin.organization_id, null)
    const before = await owner.client.getTemplate('sales-dashboard')
    assert.deepEqual(before.blocks.map((x) => x.id), ['sales_chart', 'sales_insights', 'sales_table'])
    assert.deepEqual(before.required_fields, ['date', 'sales_amount', 'region'])

    const made = await editor.client.createCanvas(project.id, { name: 'From template', template_id: 'sales-dashboard' })
    assert.deepEqual(made.blocks.map((x) => x.id).sort(), ['sales_chart', 'sales_insights', 'sales_table'])
    assert.equal(made.blocks.find((x) => x.id === 'sales_chart').metadata.created_by, editor.user.id)
    assert.equal((await owner.client.getTemplate('sales-dashboard')).usage_count, before.usage_count + 1)
    const live = track(owner.client.openCanvas(made.id))
    await live.whenSynced()
    assert.match(live.text('sales_insights').toString(), /^## Key Insights/)
    live.insertText('sales_insights', 0, '>')
    await live.whenSaved()
    live.close()

    // a template from a canvas: its blocks without their attribution
    const a = track(owner.client.openCanvas(canvasId))
    await a.whenSynced()
    a.addBlock({ id: 'intro', type: 'narrative', position: pos(0, 0, 12, 2), content: { text: 'Weekly review' } })
    await a.whenSaved()
    a.close()
    const mine = await owner.client.createTemplate({
      canvas_id: canvasId, name: 'Weekly review', category: 'ops', required_fields: ['week']
    })
    assert.equal(mine.created_by, owner.user.id)
    assert.equal(mine.is_public, false)
    assert.equal(mine.usage_count, 0)
    assert.deepEqual(mine.blocks, [{ id: 'intro', type: 'narrative', position: pos(0, 0, 12, 2), content: { text: 'Weekly review' } }])
    assert.ok((await owner.client.listTemplates()).some((t) => t.id === mine.id))
    assert.deepEqual((await owner.client.getTemplate(mine.id)).blocks, mine.blocks)
    const second = await owner.client.createCanvas(project.id, { name: 'Week 2', template_id: mine.id })
    assert.equal(second.blocks[0].content.text, 'Weekly review')

    // another organization does not see a private template
    const stranger = await newUser(server.url, 'stranger')
    await rejectsWith(stranger.client.getTemplate(mine.id), 'not_found')
    await rejectsWith(owner.client.createCanvas(project.id, { name: 'X', template_id: 'no-such-template' }), 'not_found')
    await rejectsWith(owner.client.createTemplate({ canvas_id: canvasId, name: ' ' }), 'invalid_request', 'invalid_name')
  })

  test('sharing: grant, live revoke (4403), settings, admin only', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const guest = await newUser(server.url, 'guest')
    const initial = await owner.client.getSharing(canvasId)
    assert.deepEqual(initial, {
      visibility: 'private',
      permissions: [],
      public_link: null,
      public_link_enabled: false,
      embed_settings: { enabled: false, allowed_domains: [] }
    })
    await rejectsWith(guest.client.getCanvas(canvasId), 'forbidden')

    const granted = await owner.client.setPermission(canvasId, guest.user.id, 'editor')
    assert.equal(granted.permissions.length, 1)
    assert.equal(granted.permissions[0].user_id, guest.user.id)
    assert.equal(granted.permissions[0].role, 'editor')
    assert.equal(granted.permissions[0].granted_by, owner.user.id)
    assert.equal(typeof granted.permissions[0].granted_at, 'string')

    const g = track(guest.client.openCanvas(canvasId))
    const o = track(owner.client.openCanvas(canvasId))
    await Promise.all([g.whenSynced(), o.whenSynced()])
    assert.equal(g.sharing().permissions[0].role, 'editor')
    g.addBlock({ id: 'by_guest', type: 'chart', position: pos(0, 0, 6, 4) })
    await g.whenSaved()
    await until(() => o.block('by_guest'), o, ['blocks'])
    assert.equal((await guest.client.getCanvas(canvasId)).name, 'Board')

    // settings: visibility and embedding, seen live in the document
    const sharingEvent = next(o, 'sharing')
    const patched = await owner.client.updateSharing(canvasId, {
      visibility: 'team', embed_settings: { enabled: true, allowed_domains: ['partner.com'] }
    })
    assert.equal(patched.visibility, 'team')
    assert.deepEqual(patched.embed_settings, { enabled: true, allowed_domains: ['partner.com'] })
    await sharingEvent
    await until(() => o.sharing().visibility === 'team', o, ['sharing'])
    await rejectsWith(editor.client.updateSharing(canvasId, { visibility: 'private' }), 'forbidden')
    await rejectsWith(editor.client.setPermission(canvasId, guest.user.id, 'admin'), 'forbidden')
    await rejectsWith(owner.client.updateSharing(canvasId, { visibility: 'everyone' }), 'invalid_request')

    // revoking the grant closes the guest's open canvas with 4403, for good
    const closed = next(g, 'error')
    await owner.client.removePermission(canvasId, guest.user.id)
    const [err] = await closed
    assert.ok(isCanvasError(err, 'forbidden') && err.info.source === 'socket' && err.info.closeCode === 4403)
    assert.equal(g.connection.reconnectPending, false)
    assert.equal(g.status, ConnectionStatus.Offline)
    g.close()
    await rejectsWith(guest.client.getCanvas(canvasId), 'forbidden')
    await rejectsWith(owner.client.removePermission(canvasId, guest.user.id), 'not_found')
    assert.deepEqual((await owner.client.getSharing(canvasId)).permissions, [])
    o.close()
  })

  test('public link: read-only without an account over REST and live, then revoked', async () => {
    const { owner, editor, canvasId } = await team(server.url)
    const o = track(owner.client.openCanvas(canvasId))
    await o.whenSynced()
    o.addBlock({ id: 'public', type: 'narrative', position: pos(0, 0, 6, 4), content: { text: 'for all' } })
    await o.whenSaved()

    const link = await owner.client.createPublicLink(canvasId)
    assert.equal(typeof link.token, 'string')
    assert.equal(link.url, `/api/v1/canvases/${canvasId}?link=${link.token}`)
    assert.equal(link.websocket, `/ws/${canvasId}?link=${link.token}`)
    const sharing = await owner.client.getSharing(canvasId)
    assert.equal(sharing.visibility, 'public')
    assert.equal(sharing.public_link, link.token)
    const seenByEditor = await editor.client.getSharing(canvasId)
    assert.equal(seenByEditor.public_link, null, 'only admins see the token')
    assert.equal(seenByEditor.public_link_enabled, true)

    // no account at all
    const anonymous = new CanvasClient({ baseUrl: server.url, WebSocket, backoff: { initialMs: 50, maxMs: 500 } })
    const json = await anonymous.getCanvas(canvasId, { link: link.token })
    assert.equal(json.name, 'Board')
    assert.equal(typeof json.sharing.public_link, 'string', 'the document names the link')
    assert.notEqual(json.sharing.public_link, link.token, 'by its id, never its token')
    assert.equal(json.is_favorite, undefined)
    await rejectsWith(anonymous.getCanvas(canvasId, { link: 'wrong' }), 'not_found')
    await rejectsWith(anonymous.getCanvas(canvasId), 'unauthorized')

    const v = track(anonymous.openCanvas(canvasId, { link: link.token }))
    await v.whenSynced()
    assert.equal(v.block('public').content.text, 'for all')
    o.insertText('public', 7, ' of you')
    await until(() => v.block('public')?.content.text === 'for all of you', v, ['blocks'])
    // read-only: an edit is refused and the view resyncs to the server's document
    const refused = next(v, 'refused')
    const resynced = next(v, 'resync')
    v.addBlock({ id: 'anon', type: 'chart', position: pos(6, 0, 6, 4) })
    const [error] = await refused
    assert.ok(isCanvasError(error, 'update_refused'))
    assert.equal(error.info.refusal, 'read_only')
    await resynced
    await v.whenSynced()
    assert.equal(v.block('anon'), undefined)

    // a new link replaces the old one; revoking closes link connections with 4403
    const closed = next(v, 'error')
    await owner.client.deletePublicLink(canvasId)
    const [err] = await closed
    assert.ok(isCanvasError(err, 'forbidden') && err.info.closeCode === 4403)
    assert.equal(v.connection.reconnectPending, false)
    v.close()
    await rejectsWith(anonymous.getCanvas(canvasId, { link: link.token }), 'not_found')
    const after = await owner.client.getSharing(canvasId)
    assert.equal(after.visibility, 'private')
    assert.equal(after.public_link_enabled, false)
    await rejectsWith(owner.client.deletePublicLink(canvasId), 'not_found')
    await rejectsWith(editor.client.createPublicLink(canvasId), 'forbidden')
    o.close()
  })

  test('favorites: mark, list, unmark', async () => {
    const { owner, editor, project, canvasId } = await team(server.url)
    const other = await owner.client.createCanvas(project.id, { name: 'Other' })
    assert.deepEqual(await editor.client.listFavorites(), [])
    const first = await editor.client.favorite(canvasId)
    assert.deepEqual(first, { canvas_id: canvasId, is_favorite: true, favorites_count: 1 })
    assert.equal((await owner.client.favorite(canvasId)).favorites_count, 2)
    await editor.client.favorite(other.id)
    const favorites = await editor.client.listFavorites()
    assert.deepEqual(favorites.map((c) => c.id), [other.id, canvasId], 'most recently marked first')
    assert.equal(favorites[1].name, 'Board')
    assert.equal((await editor.client.getCanvas(canvasId)).is_favorite, true)
    assert.equal((await editor.client.getCanvas(canvasId)).interactions.favorites_count, 2)

    assert.deepEqual(await editor.client.unfavorite(canvasId), { canvas_id: canvasId, is_favorite: false, favorites_count: 1 })
    assert.deepEqual((await editor.client.listFavorites()).map((c) => c.id), [other.id])
    assert.equal((await editor.client.getCanvas(canvasId)).is_favorite, false)
    const stranger = await newUser(server.url, 'stranger')
    await rejectsWith(stranger.client.favorite(canvasId), 'forbidden')
  })

  test('archiving a project makes its open canvases read-only, live; restoring it ends that', async () => {
    const { owner, editor, project, canvasId } = await team(server.url)
    const e = track(editor.client.openCanvas(canvasId))
    await e.whenSynced()
    e.addBlock({ id: 'before', type: 'chart', position: pos(0, 0, 6, 4) })
    await e.whenSaved()

    const renamed = await owner.client.updateProject(project.id, { name: 'Lifecycle (old)', description: 'done' })
    assert.equal(renamed.name, 'Lifecycle (old)')
    assert.equal(renamed.description, 'done')
    assert.equal(renamed.is_archived, false)
    await rejectsWith(editor.client.updateProject(project.id, { is_archived: true }), 'forbidden')

    const archived = await owner.client.updateProject(project.id, { is_archived: true })
    assert.equal(archived.is_archived, true)
    assert.equal((await owner.client.listProjects()).some((p) => p.id === project.id), false)
    assert.deepEqual((await owner.client.listProjects({ archived: true })).map((p) => p.id), [project.id])
    await rejectsWith(owner.client.createCanvas(project.id, { name: 'late' }), 'forbidden')

    // the editor's open canvas: its next edit is refused and it resyncs without it
    const refused = next(e, 'refused')
    const resynced = next(e, 'resync')
    e.addBlock({ id: 'during', type: 'chart', position: pos(6, 0, 6, 4) })
    const [error] = await refused
    assert.ok(isCanvasError(error, 'update_refused'))
    assert.equal(error.info.refusal, 'read_only')
    await resynced
    await e.whenSynced()
    assert.equal(e.block('during'), undefined)
    assert.ok(e.block('before'))
    await rejectsWith(editor.client.restoreVersion(canvasId, 1), 'forbidden')

    // restored: the same open canvas may edit again
    const active = await owner.client.updateProject(project.id, { is_archived: false })
    assert.equal(active.is_archived, false)
    assert.ok((await owner.client.listProjects()).some((p) => p.id === project.id))
    e.addBlock({ id: 'after', type: 'chart', position: pos(6, 0, 6, 4) })
    await e.whenSaved()
    assert.deepEqual((await owner.client.getCanvas(canvasId)).blocks.map((x) => x.id).sort(), ['after', 'before'])
    e.close()
  })
})
