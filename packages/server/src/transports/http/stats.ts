/**
 * `GET /v1/stats`: the hub's own figures for the dashboard's system view —
 * connections, subscriptions, event counters, store and bus health — read from
 * the metrics this process keeps for Prometheus, as one JSON document.
 *
 * Counters are totals since the process started: a client derives rates (events
 * per second) from two readings and their `at`. The figures are this process's;
 * with several hubs behind a load balancer each answers for itself.
 */
import { ErrorBodyRef, ErrorCode, type Stats, StatsSchema } from '@headway/protocol';
import type { FastifyInstance } from 'fastify';
import type { Metric } from 'prom-client';
import type { ServerContext } from '../../context.js';
import { HeadwayError } from '../../errors.js';
import { isPrivileged } from '../../policy.js';
import { bearerToken } from '../credentials.js';
import { probeHealth } from './health.js';
import { BEARER } from './openapi.js';

/** Sum of a metric's values, optionally only those whose name ends with `suffix` (a histogram's `_sum`). */
async function total(metric: Metric, suffix?: string): Promise<number> {
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    if (suffix === undefined || (v as { metricName?: string }).metricName?.endsWith(suffix)) sum += v.value;
  }
  return sum;
}

/** Readings kept for `history`: one minute, one a second. */
const HISTORY_READINGS = 60;
const HISTORY_INTERVAL_MS = 1_000; // 1 second

/** Register `GET /v1/stats` (API keys and admin tokens). Call after `registerHttp`. */
export async function registerStats(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const { hub, metrics } = ctx;
  const started = Date.now() - process.uptime() * 1000;

  // The event counters once a second, so that the system view's chart has its minute at once
  // instead of filling up while the page is open.
  const history: Stats['history'] = [];
  const read = async function readCounters() {
    const [ingested, messagesSent] = await Promise.all([
      total(metrics.eventsIngested),
      total(metrics.messagesSent),
    ]);
    history.push({ at: new Date().toISOString(), ingested, messagesSent });
    if (history.length > HISTORY_READINGS) history.shift();
  };
  const timer = setInterval(() => void read(), HISTORY_INTERVAL_MS);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
  await read();

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
          security: BEARER,
          response: {
            200: StatsSchema,
            401: ErrorBodyRef('HW_ERR_UNAUTHORIZED or HW_ERR_TOKEN_EXPIRED.'),
            403: ErrorBodyRef('HW_ERR_FORBIDDEN: a token without the admin role.'),
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
          history: [...history],
        };
      },
    );
  });
}
