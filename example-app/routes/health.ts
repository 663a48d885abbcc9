import type { FastifyInstance } from 'fastify'
import { health } from '../schemas.ts'

/** `GET /health`: public; 503 while keyhole's monitor reports a finding on the database. */
export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', { schema: health }, async () => {
    app.keyhole.assertHealthy()
    return { status: 'ok' }
  })
}
