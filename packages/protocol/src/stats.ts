/**
 * `GET /v1/stats`: one hub process's figures for the dashboard's system view.
 * Counters are totals since the process started: a client derives rates from
 * two readings and their `at`.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ProbeStatusSchema } from './rest-responses.js';

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
      status: ProbeStatusSchema,
      commits: Total('Batches committed.'),
      commitSecondsAvg: Type.Union([Type.Number(), Type.Null()], {
        description: 'Mean time to commit a batch, seconds; null before the first commit.',
      }),
      errors: Total('Batches the store refused or failed to commit.'),
    }),
    bus: Type.Object({
      kind: Type.String({ description: '`memory` or `redis`.' }),
      shared: Type.Boolean({ description: 'Other processes publish to it too.' }),
      status: ProbeStatusSchema,
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
    history: Type.Array(
      Type.Object({
        at: Type.String({ description: 'Time of the reading (ISO 8601).' }),
        ingested: Total('`events.ingested` then.'),
        messagesSent: Total('`events.messagesSent` then.'),
      }),
      {
        description:
          'Readings of the event counters once a second over the last minute, oldest first, so that a ' +
          'chart of the rates has its whole window at once.',
      },
    ),
  },
  { description: "This process's figures; counters are totals since it started." },
);
export type Stats = Static<typeof StatsSchema>;
