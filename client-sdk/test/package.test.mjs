// The package as an application gets it: `npm pack`, unpacked into the node_modules of two
// throwaway apps, imported by its published subpaths (`.`, `/rest`, `/live`), at run time
// and through their type declarations. One app has nothing else installed: `/rest` must work
// there (it imports no yjs, nor any other dependency). The other has the SDK's dependencies
// and its own yjs (the peer dependency): the SDK must use that one copy, so `instanceof`
// holds between the app's Yjs types and the SDK's documents. Run after `npm run build`.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { WAIT_MS } from './lib/util.mjs'

const sdkDir = fileURLToPath(new URL('..', import.meta.url))
const manifest = JSON.parse(readFileSync(join(sdkDir, 'package.json'), 'utf8'))
const tsc = join(sdkDir, 'node_modules/typescript/bin/tsc')
const run = promisify(execFile)

let work
/** An app with nothing but the SDK installed. */
let bare
/** An app with the SDK, its dependencies and its own yjs. */
let full

/** Runs `file` (a command and arguments) in `cwd`, bounded; resolves with its stdout. */
async function exec (cwd, file, args) {
  try {
    return (await run(file, args, { cwd, timeout: 2 * WAIT_MS })).stdout
  } catch (err) {
    throw new Error(`${file} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${err.stdout ?? ''}`)
  }
}

/** A fresh app folder with the packed SDK unpacked into node_modules/@canvas-engine/sdk. */
async function app (name, tarball) {
  const dir = join(work, name)
  const target = join(dir, 'node_modules', manifest.name)
  mkdirSync(dirname(target), { recursive: true })
  await exec(dir, 'tar', ['-xzf', tarball])
  renameSync(join(dir, 'package'), target)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2022', 'DOM'],
      strict: true,
      noEmit: true,
      types: [],
      // the bare app checks the SDK's declarations too: they must not need yjs either
      skipLibCheck: name !== 'bare'
    },
    include: ['*.ts']
  }))
  return dir
}

/** Runs an ES module written into `dir` and parses what it prints as JSON. */
async function runModule (dir, name, source) {
  writeFileSync(join(dir, name), source)
  return JSON.parse(await exec(dir, process.execPath, [name]))
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'canvas-sdk-package-'))
  const [packed] = JSON.parse(await exec(sdkDir, 'npm', ['pack', '--json', '--pack-destination', work]))
  const tarball = join(work, packed.filename)
  bare = await app('bare', tarball)
  full = await app('full', tarball)
  for (const dep of [...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)]) {
    const link = join(full, 'node_modules', dep)
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(join(sdkDir, 'node_modules', dep), link, 'dir')
  }
})

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

test('yjs is a peer dependency, and each subpath export has types and an ES module', () => {
  assert.equal(manifest.peerDependencies?.yjs !== undefined, true, 'yjs is a peer dependency')
  assert.equal(manifest.dependencies?.yjs, undefined, 'yjs is not a dependency (an app would load two copies)')
  assert.equal(typeof manifest.devDependencies?.yjs, 'string', 'yjs is a dev dependency, for the tests and the demo')
  for (const subpath of ['.', './rest', './live']) {
    const entry = manifest.exports[subpath]
    assert.deepEqual(Object.keys(entry), ['types', 'import'], `exports["${subpath}"]: types first, then import`)
  }
})

test('/rest works in an app with nothing else installed; /live needs the dependencies', async () => {
  const out = await runModule(bare, 'rest.mjs', `
    import { RestClient, CanvasError, isCanvasError, PERMANENT_CLOSE_CODES } from '@canvas-engine/sdk/rest'
    import * as rest from '@canvas-engine/sdk/rest'
    const client = new RestClient({ baseUrl: 'http://127.0.0.1:9/', fetch: async () => { throw new Error('offline') } })
    let code = null
    try { await client.me() } catch (err) { code = isCanvasError(err, 'network') && err instanceof CanvasError ? err.code : String(err) }
    let live = null
    try { await import('@canvas-engine/sdk/live') } catch (err) { live = err.code }
    console.log(JSON.stringify({
      exports: Object.keys(rest).sort(), baseUrl: client.baseUrl, code, closeCodes: PERMANENT_CLOSE_CODES.has(4403), live
    }))
  `)
  assert.deepEqual(out.exports, ['CanvasError', 'PERMANENT_CLOSE_CODES', 'RestClient', 'answersBinding', 'bindingsIn',
    'blockDataFrom', 'canonicalJson', 'isCanvasError', 'renderNarrative', 'rowObjects'])
  assert.equal(out.baseUrl, 'http://127.0.0.1:9')
  assert.equal(out.code, 'network')
  assert.equal(out.closeCodes, true)
  // the check above is meaningful: nothing around this app supplies yjs or the other dependencies
  assert.equal(out.live, 'ERR_MODULE_NOT_FOUND')
})

test('/rest type-checks without yjs: its declarations are complete and refer to no dependency', async () => {
  writeFileSync(join(bare, 'rest.ts'), `
    import { RestClient, isCanvasError, type CanvasJson, type CanvasErrorInfo, type RestClientOptions } from '@canvas-engine/sdk/rest'
    const options: RestClientOptions = { baseUrl: 'http://127.0.0.1:8080', onTokenExpired: async (c: RestClient) => c.token }
    const client = new RestClient(options)
    export async function name (id: string): Promise<string> {
      const json: CanvasJson = await client.getCanvas(id)
      return json.name
    }
    export function code (err: unknown): CanvasErrorInfo['code'] | null {
      return isCanvasError(err) ? err.info.code : null
    }
    // @ts-expect-error the REST client opens no live canvas
    client.openCanvas('id')
  `)
  await exec(bare, process.execPath, [tsc, '-p', 'tsconfig.json'])
})

test('the root, /live and the app share one yjs: documents are instances of the app\'s Y.Doc', async () => {
  const out = await runModule(full, 'live.mjs', `
    import * as AppY from 'yjs'
    import * as root from '@canvas-engine/sdk'
    import * as rest from '@canvas-engine/sdk/rest'
    import * as live from '@canvas-engine/sdk/live'
    // a socket that never opens: the canvas exists (with its document) without a server
    class IdleSocket {
      constructor () { this.binaryType = 'arraybuffer'; this.readyState = 0; this.onopen = this.onmessage = this.onclose = this.onerror = null }
      send () {}
      close () {}
    }
    const client = new live.CanvasClient({ baseUrl: 'http://127.0.0.1:9', WebSocket: IdleSocket })
    const canvas = client.openCanvas('00000000-0000-4000-8000-000000000000')
    const result = {
      sameY: live.Y.Doc === AppY.Doc && root.Y === live.Y,
      docIsAppDoc: canvas.doc instanceof AppY.Doc,
      blocksIsAppMap: canvas.doc.getMap('blocks') instanceof AppY.Map,
      clientIsRest: client instanceof rest.RestClient,
      sameClasses: root.CanvasClient === live.CanvasClient && root.RestClient === rest.RestClient &&
        root.CanvasError === rest.CanvasError && live.CanvasError === rest.CanvasError,
      rootHasAll: [...Object.keys(rest), ...Object.keys(live)].every((k) => k in root),
      liveExports: Object.keys(live).length
    }
    canvas.close()
    console.log(JSON.stringify(result))
  `)
  assert.deepEqual(out, {
    sameY: true,
    docIsAppDoc: true,
    blocksIsAppMap: true,
    clientIsRest: true,
    sameClasses: true,
    rootHasAll: true,
    liveExports: out.liveExports
  })
  assert.ok(out.liveExports > 10)
})

test('each subpath type-checks from its declarations, with the app\'s Yjs types', async () => {
  writeFileSync(join(full, 'all.ts'), `
    import * as AppY from 'yjs'
    import { CanvasClient, RestClient, Y, type Block } from '@canvas-engine/sdk'
    import { RestClient as Rest } from '@canvas-engine/sdk/rest'
    import { CanvasClient as Live, Canvas, ConnectionStatus, type OpenCanvasOptions } from '@canvas-engine/sdk/live'
    const client: Rest = new Live({ baseUrl: 'http://127.0.0.1:8080' })
    const same: RestClient = client
    const options: OpenCanvasOptions = { undoCaptureTimeoutMs: 0 }
    export function open (c: CanvasClient, id: string): Canvas {
      return c.openCanvas(id, options)
    }
    export function doc (canvas: Canvas): AppY.Doc {
      const d: Y.Doc = canvas.doc
      return d
    }
    export function first (canvas: Canvas): Block | undefined {
      return canvas.status === ConnectionStatus.Synced ? canvas.blocks()[0] : undefined
    }
    // @ts-expect-error a REST client opens no live canvas
    same.openCanvas('id')
  `)
  await exec(full, process.execPath, [tsc, '-p', 'tsconfig.json'])
})
