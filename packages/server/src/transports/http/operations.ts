/** Public operations routes: liveness, readiness, Prometheus metrics and the OpenAPI document. */
import { HealthSchema, ReadySchema } from '@headway/protocol';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import type { HttpRoutes } from './access.js';
import { probeHealth } from './health.js';
import { PUBLIC } from './openapi.js';

/** Register the operations routes on `routes`; `/openapi.json` answers `app`'s document. */
export function registerOperationRoutes(routes: HttpRoutes, app: FastifyInstance, ctx: ServerContext): void {
  const { hub, metrics } = ctx;

  routes.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'health',
        summary: 'Liveness: the process is up.',
        security: PUBLIC,
        response: { 200: HealthSchema },
      },
    },
    async function health() {
      return { status: 'ok' as const };
    },
  );

  routes.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'ready',
        summary: 'Readiness: the store and the bus answer.',
        security: PUBLIC,
        response: {
          200: Type.Object(ReadySchema.properties, { description: 'Ready to serve.' }),
          503: Type.Object(ReadySchema.properties, { description: 'The store or the bus is down.' }),
        },
      },
    },
    async function ready(_request, reply) {
      const [store, bus] = await Promise.all([
        probeHealth(() => hub.store.ping()),
        probeHealth(() => hub.bus.ping()),
      ]);
      const ok = store === 'ok' && bus === 'ok';
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', store, bus });
    },
  );

  routes.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus metrics.',
        security: PUBLIC,
        produces: ['text/plain'],
        response: { 200: Type.String({ description: 'Prometheus text exposition format.' }) },
      },
    },
    async function readMetrics(_request, reply) {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );

  routes.get(
    '/openapi.json',
    {
      schema: {
        tags: ['operations'],
        operationId: 'openapi',
        summary: 'This OpenAPI document.',
        security: PUBLIC,
        response: {
          200: Type.Object({}, { additionalProperties: true, description: 'OpenAPI 3.1 document.' }),
        },
      },
    },
    async function openapi() {
      return app.swagger();
    },
  );
}
