import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The hub's Prometheus metrics, in a registry of their own so that several hubs
 * in one process (tests, embedding) do not collide.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly eventsIngested = new Counter({
    name: 'headway_events_ingested_total',
    help: 'Events accepted from workers and control requests.',
    registers: [this.registry],
  });
  readonly deliveriesDispatched = new Counter({
    name: 'headway_events_dispatched_total',
    help: 'Committed events handed to subscribers (once per event, whatever the number of subscribers).',
    registers: [this.registry],
  });
  readonly messagesSent = new Counter({
    name: 'headway_messages_sent_total',
    help: 'Messages written to client connections.',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  readonly collapsed = new Counter({
    name: 'headway_progress_collapsed_total',
    help: 'Queued progress events dropped for a newer one on a slow connection.',
    registers: [this.registry],
  });
  readonly slowReaderCloses = new Counter({
    name: 'headway_slow_reader_closes_total',
    help: 'Connections closed because their send queue passed the hard limit.',
    registers: [this.registry],
  });
  readonly connectionsShed = new Counter({
    name: 'headway_connections_shed_total',
    help: 'TCP connections closed because the connection cap was reached (anonymous ones first).',
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'headway_connections',
    help: 'Open client connections.',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  readonly subscriptions = new Gauge({
    name: 'headway_subscriptions',
    help: 'Active subscriptions.',
    registers: [this.registry],
  });
  readonly clientErrors = new Counter({
    name: 'headway_client_errors_total',
    help: 'Errors answered to clients, by code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly storeCommitSeconds = new Histogram({
    name: 'headway_store_commit_seconds',
    help: 'Time to commit one batch of writes.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly storeBatchEvents = new Histogram({
    name: 'headway_store_batch_events',
    help: 'Events per committed batch.',
    buckets: [1, 5, 10, 50, 100, 500, 1000, 5000],
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'headway_store_errors_total',
    help: 'Batches the store refused or failed to commit.',
    registers: [this.registry],
  });
  readonly storeConflicts = new Counter({
    name: 'headway_store_conflicts_total',
    help: 'Job writes refused because another process wrote the job first (their requests are retried).',
    registers: [this.registry],
  });
  readonly writeRetries = new Counter({
    name: 'headway_write_retries_total',
    help: 'Write requests applied again on a reloaded job after a conflict.',
    registers: [this.registry],
  });
  readonly storeReadSeconds = new Histogram({
    name: 'headway_store_read_seconds',
    help: "Time of the hub's reads from the store, by operation.",
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly busLagSeconds = new Histogram({
    name: 'headway_bus_lag_seconds',
    help: 'Time from the commit on another process to the dispatch here (clocks of both hosts).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });
  readonly busDuplicates = new Counter({
    name: 'headway_bus_duplicates_total',
    help: 'Deliveries dropped because their seq was already dispatched.',
    registers: [this.registry],
  });
  readonly busPublishErrors = new Counter({
    name: 'headway_bus_publish_errors_total',
    help: 'Deliveries the bus could not publish at once (kept to re-publish, or dropped past the bound).',
    registers: [this.registry],
  });
  readonly busResyncs = new Counter({
    name: 'headway_bus_resyncs_total',
    help: 'Times the bus reconnected and every followed job was compared with the store.',
    registers: [this.registry],
  });
  readonly backfills = new Counter({
    name: 'headway_backfills_total',
    help: 'Reads of missed events from the store, by cause: gap, idle, resync or retry.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly backfilledEvents = new Counter({
    name: 'headway_backfilled_events_total',
    help: 'Events dispatched from the store because the bus did not bring them.',
    registers: [this.registry],
  });

  readonly webhookAttempts = new Counter({
    name: 'headway_webhook_attempts_total',
    help: 'Webhook delivery attempts, by result: success (2xx in time) or failure.',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'headway_webhook_deliveries_total',
    help: 'Webhook deliveries settled for good, by status: succeeded, or failed after retrying for the whole window.',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly webhookAttemptSeconds = new Histogram({
    name: 'headway_webhook_attempt_seconds',
    help: 'Time of one webhook delivery attempt, until the answer or the timeout.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly webhooksInFlight = new Gauge({
    name: 'headway_webhook_attempts_in_flight',
    help: 'Webhook delivery attempts under way in this process.',
    registers: [this.registry],
  });
  readonly webhookCircuitOpens = new Counter({
    name: 'headway_webhook_circuit_opens_total',
    help: 'Times a webhook was paused after failing repeatedly (its circuit opened).',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'headway_' });
  }
}
