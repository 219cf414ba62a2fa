// Bundles the demo page's script into server/assets/demo/app.js, which the server embeds at
// compile time (with index.html and app.css straight from demo/static/: nothing to build).
// `--check` builds into a temporary folder and fails if the committed bundle differs (the
// test command runs it, so a stale bundle cannot land).

import { build } from 'esbuild'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const target = join(here, '../../server/assets/demo')
const check = process.argv.includes('--check')
const out = check ? mkdtempSync(join(tmpdir(), 'canvas-demo-')) : target
const FILES = ['app.js']

mkdirSync(out, { recursive: true })
await build({
  entryPoints: [join(here, 'src/main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  outfile: join(out, 'app.js'),
  logLevel: 'warning'
})

if (check) {
  const stale = FILES.filter((f) => {
    try {
      return !readFileSync(join(out, f)).equals(readFileSync(join(target, f)))
    } catch {
      return true
    }
  })
  rmSync(out, { recursive: true, force: true })
  if (stale.length > 0) {
    console.error(`server/assets/demo is stale (${stale.join(', ')} differ from a fresh build): run \`npm run build:demo\` in client-sdk and commit the result`)
    process.exit(1)
  }
  console.log('server/assets/demo is up to date')
} else {
  for (const f of FILES) console.log(`wrote ${join(target, f)} (${readFileSync(join(target, f)).length} bytes)`)
}
