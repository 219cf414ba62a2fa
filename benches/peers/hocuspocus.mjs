// Hocuspocus as a benchmark peer: no extensions (no auth, documents in memory), on
// HOST:PORT from the environment. Started by scripts/bench-compare.sh.
import { Server } from '@hocuspocus/server'

const server = new Server({
  address: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 1234),
  quiet: true,
  stopOnSignals: true,
})
await server.listen()
console.log(`hocuspocus listening on ${process.env.HOST}:${process.env.PORT}`)
