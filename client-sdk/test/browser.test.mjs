// The demo page in headless Chromium: two pages as two users open one canvas. A block added,
// moved and typed into on one shows on the other; a cursor shows; the save state reaches
// saved; a named version restored on one page brings a deleted block back on the other; a
// viewer cannot edit; a canvas made from a template shows the template's blocks. Screenshots
// of the pages go to target/browser-screenshots/ for people to look at.
//
// The second test takes a CSV to a live chart, table and narrative metric (blocks bound to
// data): one user binds, the other sees the rows drawn and redrawn as the data changes.
//
// Needs Debian's chromium at /usr/bin/chromium (or $CHROMIUM_PATH); scripts/test.sh installs
// it when missing. Uses playwright-core only as a driver (no browser download).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { startServer, removeDataDir, workspaceRoot } from './lib/server.mjs'
import { unique } from './lib/util.mjs'

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const shots = join(workspaceRoot, 'target/browser-screenshots')
const password = 'correct horse battery staple'

let server
let browser

before(async () => {
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium (scripts/test.sh does)`)
  }
  server = await startServer()
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  mkdirSync(shots, { recursive: true })
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (server) removeDataDir(server.dataDir)
})

const pageErrors = []

async function newPage () {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } })
  // a hang guard for a loaded machine, not a performance bound
  context.setDefaultTimeout(120_000)
  const page = await context.newPage()
  page.on('pageerror', (err) => pageErrors.push(err))
  return page
}

async function signUp (page, name) {
  await page.goto(server.url)
  await page.fill('#auth-email', `${name}@example.com`)
  await page.fill('#auth-username', name)
  await page.fill('#auth-password', password)
  await page.click('#signup')
  await page.waitForSelector('#projects')
}

test('two users edit one canvas live in the demo page', async () => {
  const ann = unique('ann')
  const bob = unique('bob')
  const a = await newPage()
  const b = await newPage()

  await signUp(b, bob) // bob exists so ann can add him
  await signUp(a, ann)
  await a.fill('#new-project-name', 'Browser test')
  await a.click('#create-project')
  await a.waitForSelector('#projects li.selected')
  await a.fill('#member-email', `${bob}@example.com`)
  await a.selectOption('#member-role', 'editor')
  await a.click('#add-member')
  await a.waitForSelector('#member-result:has-text("added")')
  await a.fill('#new-canvas-name', 'Q4 Sales')
  await a.click('#create-canvas')
  await a.waitForSelector('#status[data-status="synced"]')
  const canvasUrl = a.url()
  assert.match(canvasUrl, /#\/canvas\/[0-9a-f-]+$/)

  // bob finds the canvas through the lists
  await b.reload()
  await b.click('#projects li:has-text("Browser test")')
  await b.click('#canvases li:has-text("Q4 Sales")')
  await b.waitForSelector('#status[data-status="synced"]')

  // ann adds a narrative block: it shows on bob's page
  await a.click('#add-narrative')
  const block = await a.waitForSelector('.block[data-type="narrative"]')
  const id = await block.getAttribute('data-id')
  const onB = `.block[data-id="${id}"]`
  await b.waitForSelector(onB)

  // ann drags it three columns right and two rows down (80 px columns, 50 px rows)
  const header = await a.$(`.block[data-id="${id}"] header`)
  const box = await header.boundingBox()
  await a.mouse.move(box.x + 30, box.y + 8)
  await a.mouse.down()
  await a.mouse.move(box.x + 30 + 120, box.y + 8 + 50, { steps: 6 })
  await a.mouse.move(box.x + 30 + 240, box.y + 8 + 100, { steps: 6 })
  await a.mouse.up()
  await b.waitForSelector(`${onB}[data-x="3"][data-y="2"]`)

  // and types into it: the text shows on bob's page
  await a.click(`.block[data-id="${id}"] textarea`)
  await a.keyboard.type('Sales grew 25% in Q4.')
  await b.waitForFunction((sel) => document.querySelector(sel)?.value === 'Sales grew 25% in Q4.', `${onB} textarea`)

  // bob types too; ann sees both
  await b.click(`${onB} textarea`)
  await b.keyboard.press('End')
  await b.keyboard.type(' North leads.')
  await a.waitForFunction((sel) => document.querySelector(sel)?.value === 'Sales grew 25% in Q4. North leads.',
    `.block[data-id="${id}"] textarea`)

  // undo reaches the text box: ann's typing goes, bob's text stays
  await a.click('#undo')
  await b.waitForFunction((sel) => document.querySelector(sel)?.value === ' North leads.', `${onB} textarea`)
  await a.click('#redo')
  await b.waitForFunction((sel) => document.querySelector(sel)?.value === 'Sales grew 25% in Q4. North leads.', `${onB} textarea`)

  // a chart and a table, drawn from their content
  await b.click('#add-chart')
  await a.waitForSelector('.block[data-type="chart"] svg rect')
  await a.click('#add-table')
  await b.waitForSelector('.block[data-type="table"] table td input')

  // ann's cursor shows on bob's page, with her name
  const grid = await a.$('#grid')
  const g = await grid.boundingBox()
  await a.mouse.move(g.x + 700, g.y + 500)
  await a.mouse.move(g.x + 720, g.y + 520, { steps: 3 })
  await b.waitForSelector(`.peer-cursor:has-text("${ann}")`)

  // every edit is durable
  await a.waitForSelector('#save-state[data-state="saved"]')
  await b.waitForSelector('#save-state[data-state="saved"]')

  // versions: ann names one, deletes the narrative, restores the version; bob sees it come back
  await a.fill('#version-name', 'Before cleanup')
  await a.click('#save-version')
  await a.waitForSelector('#version-result:has-text("saved as v")')
  const named = a.locator('#versions li[data-kind="named"]:has-text("Before cleanup")')
  await named.waitFor()
  await a.click(`.block[data-id="${id}"] .remove`)
  await b.waitForSelector(onB, { state: 'detached' })
  await a.waitForSelector('#save-state[data-state="saved"]')
  await named.locator('button.restore').click()
  await a.waitForSelector('#version-result:has-text("restored v")')
  await b.waitForSelector(onB)
  await b.waitForFunction((sel) => document.querySelector(sel)?.value === 'Sales grew 25% in Q4. North leads.', `${onB} textarea`)
  await a.waitForSelector(`.block[data-id="${id}"]`)
  // the restore is a version of its own, listed first on both pages
  await a.waitForSelector('#versions li:first-child[data-kind="restore"]')
  await b.waitForSelector('#versions li:first-child[data-kind="restore"]')
  await b.waitForSelector('#save-state[data-state="saved"]')

  // a viewer: their first edit is refused, the page resyncs and stops offering edits
  const cat = unique('cat')
  const c = await newPage()
  await signUp(c, cat)
  const canvasPath = new URL(canvasUrl).hash
  await a.goto(new URL('/', server.url).href)
  await a.waitForSelector('#projects li.selected')
  await a.fill('#member-email', `${cat}@example.com`)
  await a.selectOption('#member-role', 'viewer')
  await a.click('#add-member')
  await a.waitForSelector(`#member-result:has-text("${cat}")`)
  await c.goto(new URL(`/${canvasPath}`, server.url).href)
  await c.waitForSelector('#status[data-status="synced"]')
  await c.waitForSelector(onB)
  await c.click('#add-chart')
  await c.waitForSelector('#canvas-error:has-text("You can view this canvas but not edit it")')
  await c.waitForSelector('#status[data-status="synced"]')
  assert.equal(await c.locator('.block[data-type="chart"]').count(), 1, 'only the chart bob added')
  assert.equal(await c.isVisible('#add-chart'), false)
  await c.screenshot({ path: join(shots, 'cat-viewer.png') })
  await a.goto(canvasUrl)
  await a.waitForSelector('#status[data-status="synced"]')

  await a.screenshot({ path: join(shots, 'ann.png') })
  await b.screenshot({ path: join(shots, 'bob.png') })

  // a canvas from a built-in template: its chart, narrative and table show
  await b.goto(new URL('/', server.url).href)
  await b.click('#projects li:has-text("Browser test")')
  await b.fill('#new-canvas-name', 'From template')
  await b.selectOption('#new-canvas-template', 'sales-dashboard')
  await b.click('#create-canvas')
  await b.waitForSelector('#status[data-status="synced"]')
  await b.waitForSelector('.block[data-id="sales_chart"] svg rect')
  await b.waitForSelector('.block[data-id="sales_table"] table td input')
  assert.match(await b.inputValue('.block[data-id="sales_insights"] textarea'), /^## Key Insights/)
  await b.waitForSelector('#versions li[data-kind="initial"]')
  await b.screenshot({ path: join(shots, 'bob-template.png') })
  assert.deepEqual(pageErrors, [], 'no script errors on any page')
})

// A CSV to a live shared chart, table and narrative metric: ann uploads the file, saves a
// query with a parameter and binds blocks to it; bob, on the same canvas in another browser
// context, sees the rows drawn, and sees them change when ann changes the parameter or
// uploads new data.
test('a CSV becomes a live chart, table and metric shared by two users', async () => {
  const ann = unique('ann')
  const bob = unique('bob')
  const a = await newPage()
  const b = await newPage()
  await signUp(b, bob)
  await signUp(a, ann)
  await a.fill('#new-project-name', 'Data demo')
  await a.click('#create-project')
  await a.waitForSelector('#projects li.selected')
  await a.fill('#member-email', `${bob}@example.com`)
  await a.selectOption('#member-role', 'editor')
  await a.click('#add-member')
  await a.waitForSelector('#member-result:has-text("added")')
  await a.fill('#new-canvas-name', 'Live sales')
  await a.click('#create-canvas')
  await a.waitForSelector('#status[data-status="synced"]')
  await b.reload()
  await b.click('#projects li:has-text("Data demo")')
  await b.click('#canvases li:has-text("Live sales")')
  await b.waitForSelector('#status[data-status="synced"]')

  // 1. the CSV
  const csv = 'region,product,amount\nnorth,widget,10\nsouth,widget,20\nnorth,gadget,5\neast,widget,7\nsouth,gadget,30\n'
  await a.setInputFiles('#csv-file', { name: 'sales.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) })
  await a.click('#upload-csv')
  await a.waitForSelector('#data-result:has-text("uploaded sales.csv")')
  await a.waitForSelector('#sources li[data-name="sales"]:has-text("amount: integer")')

  // 2. a saved query with a parameter (the panel's sample: amount >= {{min}}, min defaults to 0)
  await a.fill('#query-name', 'Sales over a minimum')
  await a.fill('#query-params', 'min:number=0')
  await a.click('#save-query')
  await a.waitForSelector('#data-result:has-text("saved query")')

  // 3. a bar chart split by product, a table in currency, a narrative metric
  await a.click('#bind-chart')
  const chart = '.block[data-type="chart"].bound'
  await a.waitForSelector(`${chart} svg.bound-chart rect.bar`)
  await a.selectOption('#bind-format', 'currency')
  await a.click('#bind-table')
  const table = '.block[data-type="table"].bound'
  await a.waitForSelector(`${table} table.bound-table td.currency`)
  await a.selectOption('#metric-calc', 'sum')
  await a.click('#bind-metric')
  const story = '.block[data-type="narrative"]'
  await a.waitForSelector(`${story} .rendered strong:text-is("72")`)

  // bob sees the chart drawn from the rows: 5 bars in 2 series with a legend, and the table
  const bars = (page) => page.locator(`${chart} rect.bar`).count()
  await b.waitForFunction((sel) => document.querySelectorAll(sel).length === 5, `${chart} rect.bar`)
  assert.deepEqual(await b.locator(`${chart} .legend-item`).evaluateAll((els) => els.map((e) => e.dataset.series).sort()), ['gadget', 'widget'])
  assert.ok(await b.locator(`${chart} .tick`).count() >= 3, 'the y axis has ticks')
  await b.waitForSelector(`${chart} .data-status[data-state="completed"] .data-age:has-text("computed")`)
  await b.waitForSelector(`${table} td.currency:text-is("$30.00")`)
  assert.equal(await b.textContent(`${table} .page-info`), 'page 1 of 1 · 5 rows')
  await b.waitForSelector(`${story} .rendered strong:text-is("72")`)
  // the table's result came from the cache the chart filled
  await b.waitForSelector(`${table} .data-status .cached`)

  // sorting and paging go through the server
  await b.click(`${table} th[data-field="amount"]`) // -amount -> amount
  await b.waitForSelector(`${table} tbody tr:first-child td.currency:text-is("$5.00")`)

  // ann changes the parameter: bob's chart, table and metric change
  const min = a.locator(`${chart} .param[data-name="min"]`)
  await min.fill('10')
  await min.press('Tab')
  await b.waitForFunction((sel) => document.querySelectorAll(sel).length === 3, `${chart} rect.bar`)
  await b.waitForSelector(`${story} .rendered strong:text-is("60")`)
  assert.equal(await bars(a), 3)

  // a refresh runs the table's query past the cache: bob's table stops saying "from cache"
  await a.click(`${table} .refresh`)
  await b.waitForSelector(`${table} .data-status[data-state="completed"]:not(:has(.cached))`)

  // new data: ann uploads a new file, bob's chart shows the new region
  const csv2 = 'region,product,amount\nnorth,widget,100\nwest,gadget,50\nwest,widget,25\n'
  await a.setInputFiles('#csv-file', { name: 'sales-2.csv', mimeType: 'text/csv', buffer: Buffer.from(csv2) })
  await a.click('#upload-csv')
  await a.waitForSelector('#data-result:has-text("replaced sales-2.csv")')
  await b.waitForSelector(`${chart} .x-label:text-is("west")`)
  await b.waitForSelector(`${story} .rendered strong:text-is("175")`)

  // a line chart of the same query
  await a.selectOption('#bind-chart-type', 'line')
  await a.click('#bind-chart')
  await b.waitForSelector('.block[data-type="chart"].bound svg.bound-chart.line polyline.line')

  // narrative markdown is rendered, and HTML in the text never runs
  await a.click(`${story} textarea`)
  await a.keyboard.press('Control+End')
  await a.keyboard.type('\n<img src=x onerror="window.__xss=1"> [bad](javascript:window.__xss=2) _fine_')
  await b.waitForSelector(`${story} .rendered em:text-is("fine")`)
  assert.equal(await b.locator(`${story} .rendered img`).count(), 0)
  assert.equal(await b.locator(`${story} .rendered a[href^="javascript"]`).count(), 0)
  assert.match(await b.textContent(`${story} .rendered`), /<img src=x/)
  assert.equal(await b.evaluate(() => window.__xss), undefined)

  await a.waitForSelector('#save-state[data-state="saved"]')
  await a.screenshot({ path: join(shots, 'ann-data.png') })
  await b.screenshot({ path: join(shots, 'bob-data.png') })
  assert.deepEqual(pageErrors, [], 'no script errors on any page')
})
