// The README's SDK example (examples/quickstart.mjs, quoted verbatim in README.md) runs as
// written against the real server.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startServer, removeDataDir, workspaceRoot } from './lib/server.mjs'
import { WAIT_MS } from './lib/util.mjs'

const example = fileURLToPath(new URL('../examples/quickstart.mjs', import.meta.url))

test('README quotes the example verbatim', () => {
  const readme = readFileSync(join(workspaceRoot, 'README.md'), 'utf8')
  const source = readFileSync(example, 'utf8').trim()
  assert.ok(readme.includes(source), 'README.md must contain client-sdk/examples/quickstart.mjs verbatim')
})

test('the example runs as written', async (t) => {
  const server = await startServer()
  try {
    // killed when it runs too long or the test is cancelled, so it cannot outlive the test
    const { stdout } = await promisify(execFile)(process.execPath, [example], {
      env: { ...process.env, CANVAS_URL: server.url }, timeout: 2 * WAIT_MS, signal: t.signal
    })
    assert.match(stdout, /changed: block_[0-9a-f]+ added/)
    assert.match(stdout, /^saved$/m)
    assert.match(stdout, /narrative at 6,0; chart at 0,4/)
  } finally {
    await server.stop()
    removeDataDir(server.dataDir)
  }
})
