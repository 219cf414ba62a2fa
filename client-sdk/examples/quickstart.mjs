import WebSocket from 'ws' // Node needs a WebSocket; browsers have their own
import { CanvasClient } from '@canvas-engine/sdk'

const client = new CanvasClient({ baseUrl: process.env.CANVAS_URL ?? 'http://127.0.0.1:8080', WebSocket })
const name = `ann${Date.now()}`
await client.signup({ email: `${name}@example.com`, username: name, password: 'correct horse battery' })
const project = await client.createProject({ name: 'Q4' })
const { id } = await client.createCanvas(project.id, { name: 'Q4 Sales' })

const canvas = client.openCanvas(id)
canvas.on('blocks', (changes) => console.log('changed:', changes.map((c) => `${c.id} ${c.kind}`).join(', ')))
canvas.on('saved', () => console.log('saved'))
await canvas.whenSynced()
canvas.presence.update({ user: { name: 'Ann', color: '#e91e63' }, cursor: { x: 10, y: 10 } })

const chart = canvas.addBlock({
  type: 'chart',
  position: { x: 0, y: 0, w: 6, h: 4 },
  content: {
    chart_type: 'bar',
    title: 'Sales by region',
    config: { x_axis: 'region', y_axis: 'total_sales' },
    rows: [{ region: 'North', total_sales: 120 }, { region: 'South', total_sales: 80 }]
  }
})
const note = canvas.addBlock({ type: 'narrative', position: { x: 6, y: 0, w: 6, h: 4 }, content: { text: '## Key insights' } })
canvas.text(note).insert(15, '\nNorth leads.') // a Y.Text: bind it to any editor
canvas.moveBlock(chart, 0, 4)
await canvas.whenSaved() // durable on the server

const json = await client.getCanvas(id)
console.log(json.blocks.map((b) => `${b.type} at ${b.position.x},${b.position.y}`).join('; '))
canvas.close()
