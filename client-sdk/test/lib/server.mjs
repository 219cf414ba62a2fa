// Starts the real `canvas-server` binary for a test and stops it afterwards.
//
// The binary is $CANVAS_SERVER_BIN, or target/debug/canvas-server of this workspace (build it
// with `cargo build -p canvas-server`; scripts/test.sh does). A missing binary fails the test
// loudly. The server binds 127.0.0.1:0 (or a given port, to restart on the same address) and
// prints `canvas-server listening on http://ADDR` on stdout; we read the address from there.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { WAIT_MS } from './util.mjs'

const here = fileURLToPath(new URL('.', import.meta.url))
export const workspaceRoot = resolve(here, '../../..')

export function serverBinary () {
  const bin = process.env.CANVAS_SERVER_BIN || join(workspaceRoot, 'target/debug/canvas-server')
  if (!existsSync(bin)) {
    throw new Error(`canvas-server binary not found at ${bin}: run \`cargo build -p canvas-server\` first (or set CANVAS_SERVER_BIN)`)
  }
  return bin
}

/** A fresh data folder, removed by `removeDataDir`. */
export function makeDataDir () {
  return mkdtempSync(join(tmpdir(), 'canvas-sdk-test-'))
}

export function removeDataDir (dir) {
  rmSync(dir, { recursive: true, force: true })
}

/**
 * Starts a server. Options: dataDir (default: a fresh folder), port (default 0 = any free),
 * extraArgs. Resolves to { url, port, dataDir, stop() } once it listens.
 */
export async function startServer ({ dataDir = makeDataDir(), port = 0, extraArgs = [] } = {}) {
  const child = spawn(serverBinary(), [
    '--bind', `127.0.0.1:${port}`,
    '--data-dir', dataDir,
    '--log', 'warn',
    // A test file signs up dozens of users from 127.0.0.1 within a minute (the default
    // allows 20 signups per address per minute).
    '--signup-rate-limit', '1000',
    ...extraArgs
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk.toString()).slice(-8000) })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`canvas-server did not listen within ${WAIT_MS / 1000} s:\n${stderr}`))
    }, WAIT_MS)
    const settle = (finish, value) => {
      clearTimeout(timer)
      finish(value)
    }
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line)
      if (m) settle(resolve, m[1])
    })
    child.once('error', (err) => settle(reject, err))
    exited.then(({ code, signal }) => settle(reject, new Error(`canvas-server exited (${code ?? signal}) before listening:\n${stderr}`)))
  })
  const boundPort = Number(new URL(url).port)
  return {
    url,
    port: boundPort,
    dataDir,
    child,
    /** SIGTERM (a clean stop: rooms flush, sockets close with 1001); resolves when it exited. */
    async stop () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return await exited
    },
    stderr: () => stderr
  }
}
