import { createServer, type AddressInfo } from 'node:net'

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      // Listening on TCP, address() is always an AddressInfo.
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}
