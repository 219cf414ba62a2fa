// The SDK's data API against the real canvas-server binary: data sources, saved queries,
// executions and pipelines over REST, and blocks bound to live data on open canvases
// (message 102 as `data` events, the data status, refresh, table pages, narrative text).
// Run after `npm run build`: `npm test`.

import { test, describe, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { answersBinding, blockDataFrom, isCanvasError, renderNarrative, rowObjects } from '../dist/index.js'
import { startServer, removeDataDir } from './lib/server.mjs'
import { closeTracked, next, pos, team, track, until } from './lib/util.mjs'

const SALES = 'region,product,amount\nnorth,widget,10\nsouth,widget,20\nnorth,gadget,5\neast,widget,7\nsouth,gadget,30\n'
const QUERY = 'SELECT region, product, amount FROM sales WHERE amount >= {{min}} ORDER BY amount'

/** A `sales` CSV source and a saved query over it with a `min` parameter. */
async function salesQuery (owner, project) {
  const source = await owner.client.createDataSource(project.id, { name: 'sales', type: 'file' })
  await owner.client.uploadFile(source.id, SALES)
  const query = await owner.client.createQuery(project.id, {
    name: 'sales over min',
    query_text: QUERY,
    parameters: { min: { type: 'number', default: 0 } }
  })
  return { source, query }
}

describe('renderNarrative', () => {
  test('replaces placeholders with values, in order, and keeps those without one', () => {
    const bindings = [
      { index: 0, key: 'total', source: 'c', calculation: 'sum', value: 72 },
      { index: 1, key: 'change', source: 'c', calculation: 'percentage_change', value: 614.29 },
      { index: 2, key: 'label', source: 'c', calculation: 'latest', value: 'south' },
      { index: 3, key: 'none', source: 'c', calculation: 'sum', value: null }
    ]
    assert.equal(renderNarrative('**{{total}}** ({{change}} %) {{label}} {{none}} {{total}}', bindings),
      '**72** (614.29 %) south {{none}} 72')
  })
})

describe('message 102 bodies', () => {
  test('are checked field by field and say which binding they answer', () => {
    assert.equal(blockDataFrom({ status: 'completed' }), null)
    assert.equal(blockDataFrom('garbage'), null)
    const data = blockDataFrom({
      block_id: 'c', status: 'completed', execution_id: 'e', columns: [{ name: 'a', type: 'integer' }, { bad: 1 }],
      rows: [[1], 'not a row'], total_rows: 1, computed_at: '2026-01-01T00:00:00Z', from_cache: true,
      binding: { query_id: 'q', parameters: { min: 1, max: 2 } }
    })
    assert.deepEqual(data.columns, [{ name: 'a', type: 'integer' }])
    assert.deepEqual(data.rows, [[1]])
    assert.deepEqual(rowObjects(data), [{ a: 1 }])
    assert.equal(answersBinding(data, { type: 'query', query_id: 'q', parameters: { max: 2, min: 1 } }), true)
    assert.equal(answersBinding(data, { type: 'query', query_id: 'q', parameters: { min: 2, max: 2 } }), false)
    assert.equal(answersBinding(data, { type: 'query', query_id: 'other', parameters: { min: 1, max: 2 } }), false)
  })
})

describe('SDK data API against canvas-server', () => {
  let server
  before(async () => { server = await startServer() })
  afterEach(closeTracked)
  after(async () => {
    await server.stop()
    removeDataDir(server.dataDir)
  })

  test('REST: data sources, saved queries, executions and pipelines', async () => {
    const { owner, viewer, project } = await team(server.url)
    const api = owner.client

    const source = await api.createDataSource(project.id, { name: 'sales', type: 'file' })
    assert.equal(source.type, 'file')
    assert.equal(source.project_id, project.id)
    const uploaded = await api.uploadFile(source.id, SALES)
    assert.deepEqual(uploaded.schema_info.tables[0].columns.map((c) => [c.name, c.type]),
      [['region', 'string'], ['product', 'string'], ['amount', 'integer']])
    assert.equal(uploaded.schema_info.tables[0].row_count, 5)
    // a malformed file is refused naming the line, and the old file stays
    await assert.rejects(api.uploadFile(source.id, 'region,product,amount\nnorth,widget,1\nsouth,widget\n'),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'malformed_data' && /line 3/.test(err.message))
    assert.equal((await api.getDataSource(source.id)).schema_info.tables[0].row_count, 5)
    assert.deepEqual((await viewer.client.listDataSources(project.id)).map((s) => s.id), [source.id])
    const synced = await api.syncDataSource(source.id)
    assert.equal(synced.status, 'active')
    assert.notEqual(synced.last_sync_at, null)
    await assert.rejects(viewer.client.uploadFile(source.id, SALES), (err) => isCanvasError(err, 'forbidden'))

    const query = await api.createQuery(project.id, {
      name: 'sales over min', query_text: QUERY, parameters: { min: { type: 'number', default: 0 } }
    })
    assert.equal(query.query_type, 'sql')
    assert.deepEqual(query.parameters, { min: { type: 'number', default: 0 } })
    assert.equal((await api.getQuery(query.id)).query_text, QUERY)
    assert.deepEqual((await viewer.client.listQueries(project.id)).map((q) => q.id), [query.id])
    const renamed = await api.updateQuery(query.id, { name: 'big sales' })
    assert.equal(renamed.name, 'big sales')
    const broken = await api.createQuery(project.id, { name: 'broken', query_text: 'SELECT region FROM sales WHERE' })
    await assert.rejects(viewer.client.executeQuery(broken.id),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'syntax_error')
    await api.deleteQuery(broken.id)

    // run with a parameter; the same again is a cache hit; fresh runs again
    const run = await viewer.client.executeQuery(query.id, { parameters: { min: 10 } })
    assert.equal(run.execution.status, 'completed')
    assert.deepEqual(run.result.rows, [['north', 'widget', 10], ['south', 'widget', 20], ['south', 'gadget', 30]])
    assert.deepEqual(run.result.columns.map((c) => c.name), ['region', 'product', 'amount'])
    const again = await viewer.client.executeQuery(query.id, { parameters: { min: 10 } })
    assert.equal(again.execution.from_cache, true)
    // the same instant (the record read back from the database has microseconds, the cached result nanoseconds)
    assert.equal(Date.parse(again.execution.computed_at), Date.parse(run.execution.computed_at))
    const fresh = await viewer.client.executeQuery(query.id, { parameters: { min: 10 }, fresh: true })
    assert.equal(fresh.execution.from_cache, false)
    assert.notEqual(fresh.execution.computed_at, run.execution.computed_at)
    await assert.rejects(viewer.client.executeQuery(query.id, { parameters: { min: 'ten' } }),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'invalid_parameter')

    const record = await viewer.client.getExecution(fresh.execution.id)
    assert.equal(record.status, 'completed')
    assert.equal(record.rows_returned, 3)
    const page = await viewer.client.executionResult(fresh.execution.id, { offset: 1, limit: 1 })
    assert.deepEqual(page.rows, [['south', 'widget', 20]])
    assert.equal(page.total_rows, 3)
    assert.equal(page.offset, 1)
    assert.equal(page.truncated, null)
    await assert.rejects(api.cancelExecution(fresh.execution.id), (err) => isCanvasError(err, 'conflict'))

    const pipeline = await api.createPipeline(project.id, {
      name: 'hourly', source_id: source.id, schedule_cron: '0 * * * *', is_active: false
    })
    assert.equal(pipeline.is_active, false)
    assert.equal(pipeline.next_run_at, null)
    assert.equal(typeof pipeline.schedule_description, 'string')
    await assert.rejects(api.createPipeline(project.id, { name: 'x', source_id: source.id, schedule_cron: 'every now and then' }),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'invalid_schedule')
    assert.deepEqual((await viewer.client.listPipelines(project.id)).map((p) => p.id), [pipeline.id])
    const on = await api.updatePipeline(pipeline.id, { is_active: true })
    assert.notEqual(on.next_run_at, null)
    const ran = await api.runPipeline(pipeline.id)
    assert.deepEqual(ran.outcome, { status: 'ok' })
    assert.equal(ran.pipeline.run_count, 1)
    assert.equal(ran.data_source.id, source.id)
    assert.equal((await api.getPipeline(pipeline.id)).last_status, 'ok')
    await api.deletePipeline(pipeline.id)
    await assert.rejects(api.getPipeline(pipeline.id), (err) => isCanvasError(err, 'not_found'))

    await api.deleteQuery(query.id)
    await assert.rejects(api.getQuery(query.id), (err) => isCanvasError(err, 'not_found'))
    await api.deleteDataSource(source.id)
    assert.deepEqual(await api.listDataSources(project.id), [])
  })

  test('live: two clients on a bound chart, table and narrative; parameters, refresh, pages', async () => {
    const { owner, editor, viewer, project, canvasId } = await team(server.url)
    const { source, query } = await salesQuery(owner, project)
    const a = track(editor.client.openCanvas(canvasId))
    const b = track(viewer.client.openCanvas(canvasId))
    await Promise.all([a.whenSynced(), b.whenSynced()])

    const binding = (min) => ({ type: 'query', query_id: query.id, parameters: { min } })
    a.batch(() => {
      a.addBlock({
        id: 'chart',
        type: 'chart',
        position: pos(0, 0, 6, 4),
        content: {
          chart_type: 'bar',
          title: 'Sales by region',
          data_source: binding(0),
          config: { x_axis: 'region', y_axis: 'amount', color: 'product', aggregation: 'sum' }
        }
      })
      a.addBlock({
        id: 'table',
        type: 'table',
        position: pos(6, 0, 6, 4),
        content: {
          data_source: binding(0),
          columns: [
            { field: 'region', header: 'Region', type: 'string' },
            { field: 'amount', header: 'Sales', type: 'currency' }
          ],
          pagination: { enabled: true, pageSize: 2 },
          sorting: { enabled: true, defaultSort: '-amount' },
          filtering: { enabled: true }
        }
      })
      a.addBlock({
        id: 'story',
        type: 'narrative',
        position: pos(0, 4, 12, 2),
        content: {
          text: 'Total **{{total}}**',
          data_bindings: [{ key: 'total', source: 'chart', calculation: 'sum' }]
        }
      })
    })

    // B gets the chart's data as a `data` event and holds it
    const first = await until(() => b.blockData('chart')?.status === 'completed' && b.blockData('chart'), b, ['data'])
    assert.equal(first.total_rows, 5)
    assert.deepEqual(first.columns.map((c) => c.name), ['region', 'product', 'amount'])
    assert.deepEqual(first.series.map((s) => s.name), ['gadget', 'widget'])
    assert.equal(typeof first.computed_at, 'string')
    assert.deepEqual(b.dataStatus('chart').state, 'completed')
    assert.equal(b.dataStatus('story'), null) // a narrative has no data of its own
    // the data says which binding it answers (it may reach B before the block does)
    assert.deepEqual(first.binding, { query_id: query.id, parameters: { min: 0 } })
    // the narrative's value is written by the server; both render it
    await until(() => b.renderedText('story') === 'Total **72**', b, ['blocks'])
    await until(() => a.renderedText('story') === 'Total **72**', a, ['blocks'])

    // A changes the parameter: B's `data` event brings the new rows, the narrative follows
    const dataEvent = next(b, 'data')
    const statuses = []
    b.on('data-status', (id, s) => { if (id === 'chart') statuses.push(s.state) })
    a.setContent('chart', 'data_source', binding(10))
    let [data] = await dataEvent
    while (data.block_id !== 'chart') [data] = await next(b, 'data')
    assert.equal(data.status, 'completed')
    assert.deepEqual(rowObjects(data).map((r) => r.amount), [10, 20, 30])
    assert.equal(b.blockData('chart'), data)
    assert.deepEqual(data.binding.parameters, { min: 10 })
    // pending from the change, running once the server's execution starts (nothing cached
    // for min=10; it may be announced before the change reaches B), then the data
    assert.ok(['pending,running,completed', 'running,completed'].includes(statuses.join()), `B's statuses: ${statuses}`)
    await until(() => b.renderedText('story') === 'Total **60**', b, ['blocks'])

    // refresh: runs again past the cache, B hears it; a viewer may not
    const before = b.blockData('chart')
    const bRunning = until(() => b.dataStatus('chart')?.state === 'running', b, ['data-status'])
    const refreshing = a.refresh('chart')
    assert.equal(a.dataStatus('chart').state, 'running')
    const refreshed = await refreshing
    assert.equal(refreshed.from_cache, false)
    assert.notEqual(refreshed.execution_id, before.execution_id)
    assert.equal(a.dataStatus('chart').state, 'completed')
    await bRunning // B saw A's refresh run, with B's chart still showing the data it had
    await until(() => b.blockData('chart').execution_id === refreshed.execution_id, b, ['data'])
    assert.equal(b.blockData('chart').from_cache, false)
    await assert.rejects(b.refresh('chart'), (err) => isCanvasError(err, 'forbidden'))
    assert.equal(b.dataStatus('chart').state, 'completed')
    await assert.rejects(a.refresh('story'),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'not_bound')

    // the table over REST: pages, sorting, filtering; bad input is a clear error
    const page1 = await b.blockDataPage('table')
    assert.deepEqual(page1.rows, [['south', 30], ['south', 20]])
    assert.equal(page1.pages, 3)
    assert.deepEqual(page1.columns.map((c) => c.format), ['string', 'currency'])
    const sorted = await b.blockDataPage('table', { page: 2, sort: 'amount' })
    assert.deepEqual(sorted.rows, [['north', 10], ['south', 20]])
    assert.equal(sorted.page, 2)
    const filtered = await b.blockDataPage('table', { filter: 'region:north' })
    assert.equal(filtered.total_rows, 2)
    await assert.rejects(b.blockDataPage('table', { sort: 'price' }),
      (err) => isCanvasError(err, 'invalid_request') && err.info.serverCode === 'unknown_column')

    // new data uploaded: B's chart follows without anyone touching the canvas
    const upload = owner.client.uploadFile(source.id, 'region,product,amount\nnorth,widget,100\nwest,gadget,50\n')
    await until(() => b.blockData('chart').total_rows === 2, b, ['data'])
    await upload
    assert.deepEqual(b.blockData('chart').series.map((s) => s.name), ['gadget', 'widget'])
    await until(() => b.renderedText('story') === 'Total **150**', b, ['blocks'])

    // a bad binding: an error status with its reason, and nothing else changes
    a.setContent('table', 'data_source', { type: 'query', query_id: '00000000-0000-4000-8000-000000000000' })
    const bad = await until(() => b.dataStatus('table')?.state === 'error' && b.dataStatus('table'), b, ['data-status'])
    assert.equal(bad.error.code, 'query_not_found')
    assert.equal(b.dataStatus('table').state, 'error', 'the data that came before the edit still answers it')
    assert.equal(b.blockData('chart').total_rows, 2)
  })
})
