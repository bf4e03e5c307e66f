/**
 * The system view's webhooks: each registered endpoint with what it receives,
 * and the recent deliveries that failed or are being retried (from
 * `GET /v1/webhooks` and `GET /v1/webhooks/:id/deliveries`, docs/webhooks.md),
 * read every few seconds while the page is visible.
 */
import { useClient } from '@headway/react';
import { useState } from 'react';
import { usePoll } from '../use-poll.js';

/** A webhook as `GET /v1/webhooks` lists it. */
interface WebhookView {
  id: string;
  url: string;
  events: string[];
  owner: string | null;
  kind: string | null;
}

/** A delivery as `GET /v1/webhooks/:id/deliveries` lists it. */
interface DeliveryView {
  id: string;
  job: string;
  seq: number;
  type: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  responseCode: number | null;
  error: string | null;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
}

interface WebhookRow {
  webhook: WebhookView;
  /** Failed for good, or pending after at least one failed attempt; most recent first. */
  troubles: DeliveryView[];
}

/** Time between two readings, ms: deliveries change at the pace of retries, not of progress. */
const POLL_MS = 5_000;
/** Deliveries read per webhook. */
const RECENT = 50;
/** Failures shown per webhook. */
const SHOWN = 5;

export function WebhooksCard() {
  const client = useClient();
  const [rows, setRows] = useState<WebhookRow[] | null>(null);
  const error = usePoll(
    () => async (stopped) => {
      const { webhooks } = await client.api<{ webhooks: WebhookView[] }>('/v1/webhooks');
      const next = await Promise.all(
        webhooks.map(async (webhook) => {
          const { deliveries } = await client.api<{ deliveries: DeliveryView[] }>(
            `/v1/webhooks/${encodeURIComponent(webhook.id)}/deliveries?limit=${RECENT}`,
          );
          const troubles = deliveries.filter(
            (d) => d.status === 'failed' || (d.status === 'pending' && d.attempts > 0),
          );
          return { webhook, troubles };
        }),
      );
      if (!stopped()) setRows(next);
    },
    POLL_MS,
    [client],
  );

  return (
    <section className="card card--wide" aria-labelledby="webhooks-title" data-card="webhooks">
      <h2 id="webhooks-title">Webhooks</h2>
      {error && (
        <p className="notice notice--error" role="alert">
          The webhooks cannot be read: <code>{error}</code>
        </p>
      )}
      {rows === null ? (
        !error && <p>Loading…</p>
      ) : rows.length === 0 ? (
        <p className="muted">
          No webhooks. Back ends register them with POST /v1/webhooks (docs/webhooks.md).
        </p>
      ) : (
        <ul className="plain webhooks">
          {rows.map(({ webhook, troubles }) => (
            <li key={webhook.id} data-webhook={webhook.id}>
              <p>
                <code>{webhook.url}</code>{' '}
                <span className="muted">
                  {webhook.events.join(', ')}
                  {webhook.owner !== null && ` · owner ${webhook.owner}`}
                  {webhook.kind !== null && ` · kind ${webhook.kind}`}
                </span>
              </p>
              {troubles.length === 0 ? (
                <p className="muted" data-failures="0">
                  No recent failures
                </p>
              ) : (
                <ul className="plain" data-failures={troubles.length}>
                  {troubles.slice(0, SHOWN).map((d) => (
                    <li key={d.id} className={d.status === 'failed' ? 'card--error' : undefined}>
                      <strong>{d.status === 'failed' ? 'failed' : 'retrying'}</strong> {d.type} of {d.job}{' '}
                      (seq {d.seq}) after {d.attempts} {d.attempts === 1 ? 'attempt' : 'attempts'}:{' '}
                      {d.error ?? (d.responseCode !== null ? `HTTP ${d.responseCode}` : 'no answer')}
                      {d.status === 'pending' && d.nextAttemptAt !== null && (
                        <span className="muted">
                          {' '}
                          · next try {new Date(d.nextAttemptAt).toLocaleTimeString()}
                        </span>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
