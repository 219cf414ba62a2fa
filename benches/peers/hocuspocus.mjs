// Hocuspocus as a benchmark peer, on HOST:PORT from the environment. Started by
// scripts/bench-compare.sh.
//
// Without REDIS_HOST: no extensions (no auth, documents in memory), as for W2-W7.
// With REDIS_HOST (and REDIS_PORT, REDIS_PREFIX, NODE_ID): @hocuspocus/extension-redis, so
// several processes serve the same documents together (W8, two nodes); still no storage.
import { Server } from '@hocuspocus/server'
import { Redis } from '@hocuspocus/extension-redis'

const extensions = []
const redis = Boolean(process.env.REDIS_HOST)
if (redis) {
  extensions.push(
    new Redis({
      host: process.env.REDIS_HOST,
      port: Number(process.env.REDIS_PORT || 6379),
      prefix: process.env.REDIS_PREFIX || 'hocuspocus',
      ...(process.env.NODE_ID ? { identifier: process.env.NODE_ID } : {}),
    }),
  )
}

const server = new Server({
  address: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 1234),
  quiet: true,
  stopOnSignals: true,
  extensions,
})
await server.listen()
// (Not `extensions.length`: the server adds its own to the array it is given.)
console.log(
  `hocuspocus listening on ${process.env.HOST}:${process.env.PORT}` +
    (redis ? ` (redis ${process.env.REDIS_HOST}:${process.env.REDIS_PORT || 6379}, prefix ${process.env.REDIS_PREFIX || 'hocuspocus'})` : ''),
)
