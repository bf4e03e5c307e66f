/**
 * The system view: the hub's own figures from `GET /v1/stats` (API keys and
 * admin tokens), read once a second while the page is visible. Rates (events
 * per second) come from the difference between two readings; the first answer
 * brings the hub's last minute of readings, so the chart starts full.
 */
import { useClient, useConnection } from '@headway/react';
import { useState } from 'react';
import { TRANSPORT_NAMES } from '../components/connection-indicator.js';
import { Sparkline } from '../components/sparkline.js';
import { WebhooksCard } from '../components/webhooks-card.js';
import { formatBytes, formatDuration, formatNumber } from '../format.js';
import { usePoll } from '../use-poll.js';

/** The answer of `GET /v1/stats` (documented in docs/api.md). */
export interface HubStats {
  at: string;
  uptimeSeconds: number;
  connections: { total: number; byTransport: Record<string, number> };
  subscriptions: number;
  topics: number;
  events: { ingested: number; dispatched: number; messagesSent: number; collapsed: number };
  store: {
    kind: string;
    status: 'ok' | 'down';
    commits: number;
    commitSecondsAvg: number | null;
    errors: number;
  };
  bus: { kind: string; shared: boolean; status: 'ok' | 'down'; publishErrors: number; backfills: number };
  jobs: { cached: number; tracked: number };
  process: { rssBytes: number; heapUsedBytes: number };
  /** The event counters once a second over the last minute, oldest first. */
  history?: { at: string; ingested: number; messagesSent: number }[];
}

/** Time between two readings, ms. */
const POLL_MS = 1_000;
/** Readings in the charts: one minute. */
const WINDOW = 60;

interface Sample {
  eventsPerSecond: number;
  messagesPerSecond: number;
}

type Reading = { at: string; ingested: number; messagesSent: number };

/** The rates between two readings of the counters; null when no time passed between them. */
function rates(previous: Reading, next: Reading): Sample | null {
  const seconds = (Date.parse(next.at) - Date.parse(previous.at)) / 1000;
  if (!(seconds > 0)) return null;
  return {
    eventsPerSecond: Math.max(0, (next.ingested - previous.ingested) / seconds),
    messagesPerSecond: Math.max(0, (next.messagesSent - previous.messagesSent) / seconds),
  };
}

/** The hub's last minute of readings as samples, so that the chart starts full. */
function samplesOf(history: readonly Reading[]): Sample[] {
  const samples: Sample[] = [];
  for (let i = 1; i < history.length; i++) {
    const sample = rates(history[i - 1]!, history[i]!);
    if (sample) samples.push(sample);
  }
  return samples.slice(-WINDOW);
}

function Health({ status }: { status: 'ok' | 'down' }) {
  return (
    <span className="health" data-health={status}>
      <span aria-hidden="true">{status === 'ok' ? '✓ ' : '✕ '}</span>
      {status === 'ok' ? 'healthy' : 'down'}
    </span>
  );
}

export function SystemView({ privileged }: { privileged: boolean }) {
  const client = useClient();
  const connection = useConnection();
  const [stats, setStats] = useState<HubStats | null>(null);
  const [samples, setSamples] = useState<Sample[]>([]);
  const error = usePoll(
    () => {
      if (!privileged) return null;
      let previous: HubStats | null = null;
      return async (stopped) => {
        const next = await client.api<HubStats>('/v1/stats');
        if (stopped()) return;
        if (previous) {
          const sample = rates({ at: previous.at, ...previous.events }, { at: next.at, ...next.events });
          if (sample) setSamples((list) => [...list.slice(-(WINDOW - 1)), sample]);
        } else if (next.history && next.history.length > 1) {
          setSamples(samplesOf(next.history));
        }
        previous = next;
        setStats(next);
      };
    },
    POLL_MS,
    [client, privileged],
  );

  if (!privileged) {
    return (
      <div className="system-view">
        <h1 tabIndex={-1}>System</h1>
        <p className="notice">The system view needs an admin token or an API key.</p>
      </div>
    );
  }

  const latest = samples.at(-1);
  const perSecond = (n: number) => `${formatNumber(n)} per second`;
  return (
    <div className="system-view">
      <h1 tabIndex={-1}>System</h1>
      {error && (
        <p className="notice notice--error" role="alert">
          The hub's stats cannot be read: <code>{error}</code>
          {error === 'HW_ERR_FORBIDDEN' && ' (they need an admin token or an API key)'}
        </p>
      )}
      {!stats ? (
        <p>Loading…</p>
      ) : (
        <div className="cards">
          <section className="card card--wide" aria-labelledby="eps-title">
            <h2 id="eps-title">Events per second</h2>
            <p className="metric" data-metric="events-per-second">
              {latest ? formatNumber(latest.eventsPerSecond) : '…'}
            </p>
            <Sparkline
              values={samples.map((s) => s.eventsPerSecond)}
              capacity={WINDOW}
              label="Events per second over the last minute"
              format={perSecond}
            />
            <p className="muted">
              {formatNumber(stats.events.ingested)} events since start · messages to clients{' '}
              {latest ? perSecond(latest.messagesPerSecond) : '…'}
              {stats.events.collapsed > 0 &&
                ` · ${formatNumber(stats.events.collapsed)} collapsed for slow readers`}
            </p>
          </section>
          <section className="card" aria-labelledby="conn-title">
            <h2 id="conn-title">Connections</h2>
            <p className="metric" data-metric="connections">
              {stats.connections.total}
            </p>
            <ul className="plain">
              {Object.entries(stats.connections.byTransport)
                .filter(([, n]) => n > 0)
                .map(([transport, n]) => (
                  <li key={transport}>
                    {transport}: {n}
                  </li>
                ))}
            </ul>
            <p className="muted">
              This page: {connection.state}
              {connection.transport && ` over ${TRANSPORT_NAMES[connection.transport]}`}
            </p>
          </section>
          <section className="card" aria-labelledby="subs-title">
            <h2 id="subs-title">Subscriptions</h2>
            <p className="metric" data-metric="subscriptions">
              {stats.subscriptions}
            </p>
            <p className="muted">
              {stats.topics} topics watched · {stats.jobs.cached} jobs in memory
            </p>
          </section>
          <section className="card" aria-labelledby="store-title">
            <h2 id="store-title">Store</h2>
            <p>
              <strong>{stats.store.kind}</strong> <Health status={stats.store.status} />
            </p>
            <p className="muted">
              {formatNumber(stats.store.commits)} commits
              {stats.store.commitSecondsAvg !== null &&
                `, ${formatNumber(stats.store.commitSecondsAvg * 1000)} ms each on average`}
              {` · ${stats.store.errors} failed`}
            </p>
          </section>
          <section className="card" aria-labelledby="bus-title">
            <h2 id="bus-title">Bus</h2>
            <p>
              <strong>{stats.bus.kind}</strong> <Health status={stats.bus.status} />
            </p>
            <p className="muted">
              {stats.bus.shared ? 'shared with other hub processes' : 'this process only'} ·{' '}
              {stats.bus.publishErrors} publish errors · {stats.bus.backfills} backfills
            </p>
          </section>
          <section className="card" aria-labelledby="process-title">
            <h2 id="process-title">Process</h2>
            <p>
              up {formatDuration(stats.uptimeSeconds * 1000)} · {formatBytes(stats.process.rssBytes)} resident
            </p>
            <p className="muted">{formatBytes(stats.process.heapUsedBytes)} of JavaScript heap in use</p>
          </section>
          <WebhooksCard />
        </div>
      )}
    </div>
  );
}
