/**
 * `GET /v1/stats`: the hub's own figures for the dashboard's system view —
 * connections, subscriptions, event counters, store and bus health — read from
 * the metrics this process keeps for Prometheus, as one JSON document.
 *
 * Counters are totals since the process started: a client derives rates (events
 * per second) from two readings and their `at`. The figures are this process's;
 * with several hubs behind a load balancer each answers for itself.
 */
import { ErrorCode } from '@headway/protocol';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Metric } from 'prom-client';
import type { ServerContext } from '../context.js';
import { HeadwayError } from '../errors.js';
import { isPrivileged } from '../policy.js';
import { bearerToken } from './credentials.js';
import { probeHealth } from './health.js';

const Health = Type.Union([Type.Literal('ok'), Type.Literal('down')]);
const Total = (description: string) => Type.Number({ minimum: 0, description });

export const StatsSchema = Type.Object(
  {
    at: Type.String({ description: 'Time of the reading (ISO 8601).' }),
    uptimeSeconds: Total('Seconds since this process started.'),
    connections: Type.Object({
      total: Total('Open client connections.'),
      byTransport: Type.Record(Type.String(), Type.Number(), {
        description: 'Open connections by transport: ws, sse, long-poll, and the seed dialects.',
      }),
    }),
    subscriptions: Total('Active subscriptions on all connections.'),
    topics: Total('Distinct jobs, users and scopes watched.'),
    events: Type.Object({
      ingested: Total('Events accepted since start (reports and control requests).'),
      dispatched: Total('Committed events handed to subscribers, once per event.'),
      messagesSent: Total('Messages written to client connections.'),
      collapsed: Total('Queued progress events replaced by a newer one on a slow connection.'),
    }),
    store: Type.Object({
      kind: Type.String({ description: '`sqlite` or `postgres`.' }),
      status: Health,
      commits: Total('Batches committed.'),
      commitSecondsAvg: Type.Union([Type.Number(), Type.Null()], {
        description: 'Mean time to commit a batch, seconds; null before the first commit.',
      }),
      errors: Total('Batches the store refused or failed to commit.'),
    }),
    bus: Type.Object({
      kind: Type.String({ description: '`memory` or `redis`.' }),
      shared: Type.Boolean({ description: 'Other processes publish to it too.' }),
      status: Health,
      publishErrors: Total('Deliveries the bus could not publish at once.'),
      backfills: Total('Reads of missed events from the store.'),
    }),
    jobs: Type.Object({
      cached: Total('Job states held in memory.'),
      tracked: Total('Jobs whose last dispatched seq is tracked.'),
    }),
    process: Type.Object({
      rssBytes: Total('Resident set size.'),
      heapUsedBytes: Total('V8 heap in use.'),
    }),
  },
  { description: "This process's figures; counters are totals since it started." },
);
export type Stats = Static<typeof StatsSchema>;

/** Sum of a metric's values, optionally only those whose name ends with `suffix` (a histogram's `_sum`). */
async function total(metric: Metric, suffix?: string): Promise<number> {
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    if (suffix === undefined || (v as { metricName?: string }).metricName?.endsWith(suffix)) sum += v.value;
  }
  return sum;
}

/** Register `GET /v1/stats` (API keys and admin tokens). Call after `registerHttp`. */
export async function registerStats(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const { hub, metrics } = ctx;
  const started = Date.now() - process.uptime() * 1000;

  await app.register(async function stats(scope) {
    // Serialized like every other Headway response; the schema documents it.
    scope.setSerializerCompiler(() => (data) => JSON.stringify(data));
    scope.get(
      '/v1/stats',
      {
        schema: {
          tags: ['operations'],
          operationId: 'stats',
          summary: "This hub process's connections, subscriptions, event counters, store and bus health.",
          description:
            'For API keys and admin tokens (other tokens: HW_ERR_FORBIDDEN). Counters are totals since the ' +
            'process started; derive rates from two readings.',
          security: [{ bearer: [] }],
          response: {
            200: StatsSchema,
            ...Object.fromEntries(
              [401, 403].map((status) => [
                status,
                Type.Ref('ErrorBody', {
                  description:
                    status === 401
                      ? 'HW_ERR_UNAUTHORIZED or HW_ERR_TOKEN_EXPIRED.'
                      : 'HW_ERR_FORBIDDEN: a token without the admin role.',
                }),
              ]),
            ),
          },
        },
      },
      async function readStats(request): Promise<Stats> {
        const principal = await ctx.auth.authenticate(bearerToken(request.headers.authorization));
        if (!isPrivileged(principal)) {
          throw new HeadwayError(ErrorCode.FORBIDDEN, 'the stats need an API key or an admin token');
        }
        const [connections, subscriptions, store, bus] = await Promise.all([
          metrics.connections.get(),
          total(metrics.subscriptions),
          probeHealth(() => hub.store.ping()),
          probeHealth(() => hub.bus.ping()),
        ]);
        const byTransport: Record<string, number> = {};
        let open = 0;
        for (const v of connections.values) {
          const transport = String(v.labels.transport ?? 'unknown');
          byTransport[transport] = (byTransport[transport] ?? 0) + v.value;
          open += v.value;
        }
        const [commits, commitSeconds] = await Promise.all([
          total(metrics.storeCommitSeconds, '_count'),
          total(metrics.storeCommitSeconds, '_sum'),
        ]);
        const memory = process.memoryUsage();
        const own = hub.stats();
        return {
          at: new Date().toISOString(),
          uptimeSeconds: Math.round((Date.now() - started) / 100) / 10,
          connections: { total: open, byTransport },
          subscriptions,
          topics: own.topics,
          events: {
            ingested: await total(metrics.eventsIngested),
            dispatched: await total(metrics.deliveriesDispatched),
            messagesSent: await total(metrics.messagesSent),
            collapsed: await total(metrics.collapsed),
          },
          store: {
            kind: hub.store.kind,
            status: store,
            commits,
            commitSecondsAvg: commits > 0 ? commitSeconds / commits : null,
            errors: await total(metrics.storeErrors),
          },
          bus: {
            kind: hub.bus.kind,
            shared: hub.bus.shared,
            status: bus,
            publishErrors: await total(metrics.busPublishErrors),
            backfills: await total(metrics.backfills),
          },
          jobs: { cached: own.cachedJobs, tracked: own.trackedJobs },
          process: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
        };
      },
    );
  });
}
