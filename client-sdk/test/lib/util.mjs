// Small helpers for the SDK tests: unique users, waiting for a condition or an event (each
// wait with a deadline and a message saying what it waited for), and closing what a test
// opened whatever happened to it.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import WebSocket from 'ws'
import { CanvasClient, Y } from '../../dist/index.js'

/**
 * How long one wait may take before it fails the test. Generous, for a loaded machine: a
 * wait that runs out means the condition was not going to hold.
 */
export const WAIT_MS = 30_000

export function unique (prefix) {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/** A signed-up client for `url`. */
export async function newUser (url, name = 'user', options = {}) {
  const client = new CanvasClient({ baseUrl: url, WebSocket, backoff: { initialMs: 50, maxMs: 500 }, ...options })
  const id = unique(name)
  const password = 'correct horse battery staple'
  const res = await client.signup({ email: `${id}@example.com`, username: id, password })
  return { client, user: res.user, email: `${id}@example.com`, password }
}

/**
 * A promise settled by `subscribe(resolve, reject)`, which returns a function that undoes
 * its subscriptions; rejects with "timed out ... waiting for `what`" after WAIT_MS. The
 * subscriptions and the deadline's timer are gone once it settles, whichever way.
 */
export function waitFor (what, subscribe) {
  return new Promise((resolve, reject) => {
    let settled = false
    let unsubscribe = null
    const settle = (finish, value) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      unsubscribe?.()
      finish(value)
    }
    const timer = setTimeout(() => {
      settle(reject, new Error(`timed out after ${WAIT_MS / 1000} s waiting for ${what}`))
    }, WAIT_MS)
    unsubscribe = subscribe((value) => settle(resolve, value), (err) => settle(reject, err))
    if (settled) unsubscribe()
  })
}

/**
 * Resolves with `check()`'s value once it is truthy, re-checking whenever `emitter` fires one
 * of `events` (and on a short poll, for conditions no event announces). Rejects when the
 * check throws, or after WAIT_MS naming `what` (by default the check's source).
 */
export function until (check, emitter = null, events = [], what = `${check}`) {
  return waitFor(what, (resolve, reject) => {
    const poll = () => {
      let value
      try {
        value = check()
      } catch (err) {
        reject(err)
        return
      }
      if (value) resolve(value)
    }
    const offs = emitter === null ? [] : events.map((e) => emitter.on(e, poll))
    const timer = setInterval(poll, 25)
    poll()
    return () => {
      offs.forEach((off) => off())
      clearInterval(timer)
    }
  })
}

/** Resolves with the arguments of the next `event` of `emitter`. */
export function next (emitter, event) {
  return waitFor(`the next '${event}' event`, (resolve) => emitter.once(event, (...args) => resolve(args)))
}

/** What two clients must agree on to hold the same document (see {@link converged}). */
function documentOf (canvas) {
  return {
    blocks: canvas.blocks(),
    meta: canvas.meta(),
    sharing: canvas.sharing(),
    // every client's updates seen so far: the server's metadata stamps are updates too
    stateVector: Object.fromEntries(Y.decodeStateVector(Y.encodeStateVector(canvas.doc)))
  }
}

/**
 * Resolves once canvases `a` and `b` hold the same document: the same blocks (with the
 * server's metadata stamps), meta and sharing, built from the same updates. After WAIT_MS it
 * fails with the difference.
 */
export async function converged (a, b) {
  const same = () => isDeepStrictEqual(documentOf(a), documentOf(b))
  try {
    await until(same, a, ['blocks'], 'both clients to hold the same document')
  } catch (err) {
    assert.deepStrictEqual(documentOf(a), documentOf(b), `${err.message}; the documents still differ`)
    throw err
  }
}

/** Things the running test opened; see {@link track}. */
const opened = []

/**
 * Registers something the running test opened (a canvas, a y-websocket provider, a Y.Doc:
 * anything with `close()` or `destroy()`) and returns it. {@link closeTracked}, the
 * `afterEach` hook of every test file that opens such things, closes it whatever happened,
 * so a failed test leaves no socket or reconnect timer keeping the runner alive.
 */
export function track (thing) {
  opened.push(thing)
  return thing
}

/** Closes (newest first) and forgets everything {@link track}ed; closing twice is harmless. */
export function closeTracked () {
  const errors = []
  for (const thing of opened.splice(0).reverse()) {
    try {
      if (typeof thing.close === 'function') thing.close()
      else thing.destroy()
    } catch (err) {
      errors.push(err)
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'closing what the test opened failed')
}

/** A grid position. */
export const pos = (x, y, w, h) => ({ x, y, w, h })

/** An owner with a project and a fresh canvas, plus an editor and a viewer of the project. */
export async function team (url) {
  const owner = await newUser(url, 'owner')
  const editor = await newUser(url, 'editor')
  const viewer = await newUser(url, 'viewer')
  const project = await owner.client.createProject({ name: 'Tests' })
  await owner.client.addMember(project.id, { email: editor.email, role: 'editor' })
  await owner.client.addMember(project.id, { email: viewer.email, role: 'viewer' })
  const canvas = await owner.client.createCanvas(project.id, { name: 'Board' })
  return { owner, editor, viewer, project, canvasId: canvas.id }
}
