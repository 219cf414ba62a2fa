// Small helpers for the SDK tests: unique users, waiting for a condition or an event.

import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { CanvasClient } from '../../dist/index.js'

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
 * Resolves when `check()` is truthy, re-checking whenever `emitter` fires one of `events`
 * (and on a slow poll, for conditions no event announces). No deadline: the test runner's
 * timeout ends a hung test.
 */
export function until (check, emitter = null, events = []) {
  return new Promise((resolve) => {
    const offs = []
    let timer = null
    const done = () => {
      const value = check()
      if (!value) return false
      offs.forEach((off) => off())
      if (timer !== null) clearInterval(timer)
      resolve(value)
      return true
    }
    if (done()) return
    if (emitter !== null) for (const e of events) offs.push(emitter.on(e, done))
    timer = setInterval(done, 25)
  })
}

/** Resolves with the arguments of the next `event` of `emitter`. */
export function next (emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)))
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
