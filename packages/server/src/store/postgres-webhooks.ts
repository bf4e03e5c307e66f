/**
 * The webhooks and the delivery outbox of the PostgreSQL store. Several hub
 * processes claim deliveries at once: `FOR UPDATE SKIP LOCKED` lets each take
 * rows the others are not taking, and the lease it writes keeps them its own
 * for the attempt, without holding a transaction open across an HTTP request.
 */
import type { PostgresPool } from './postgres-pool.js';
import {
  CLAIMED_WEBHOOK_COLUMNS,
  type ClaimedRow,
  claimedOfRow,
  DELIVERY_COLUMNS,
  type DeliveryRow,
  deliveryOfRow,
  type WebhookRow,
  webhookOfRow,
} from './webhook-rows.js';
import type {
  ClaimedDelivery,
  ClaimOptions,
  DeliveryOutcome,
  DeliveryRecord,
  WebhookRecord,
  WebhookStore,
} from './webhook-store.js';

/**
 * The commit's event insert, which also writes one pending delivery per webhook
 * that wants the event's kind and matches the job's owner and kind: the outbox
 * rows commit with their events in one statement, one round trip. The job rows
 * read here are the ones the same transaction has just written, looked up by id
 * for matched events only (`OFFSET 0` keeps the planner from joining every
 * event to `jobs` first, which would scan it on every commit).
 */
export const INSERT_EVENTS_AND_DELIVERIES = {
  name: 'headway_insert_events_and_deliveries',
  text: `WITH ins AS (
      INSERT INTO events (job, seq, kind, at, data)
      SELECT job, seq, kind, at, data
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::jsonb[]) AS v (job, seq, kind, at, data)
      RETURNING job, seq, kind, at, data
    )
    INSERT INTO webhook_deliveries
      (id, webhook, job, seq, kind, at, data, state, status, attempts, next_at, lease_until, updated_at)
    SELECT 'dl_' || replace(gen_random_uuid()::text, '-', ''), m.webhook, m.job, m.seq, m.kind, m.at, m.data,
      (SELECT state FROM jobs WHERE id = m.job), 'pending', 0, 0, 0, m.at
    FROM (
      SELECT w.id AS webhook, w.owner, w.job_kind, ins.job, ins.seq, ins.kind, ins.at, ins.data
      FROM ins JOIN webhooks w ON ins.kind = ANY (w.events)
      OFFSET 0
    ) m
    WHERE (m.owner IS NULL OR m.owner = (SELECT owner FROM jobs WHERE id = m.job))
      AND (m.job_kind IS NULL OR m.job_kind = (SELECT state->>'kind' FROM jobs WHERE id = m.job))`,
};

const SQL = {
  insertWebhook: {
    name: 'headway_insert_webhook',
    text: `INSERT INTO webhooks (id, url, events, owner, job_kind, secret, previous_secret, previous_until, created_at)
      VALUES ($1, $2, $3::text[], $4, $5, $6, NULL, NULL, $7)`,
  },
  listWebhooks: { name: 'headway_list_webhooks', text: 'SELECT * FROM webhooks ORDER BY created_at, id' },
  getWebhook: { name: 'headway_get_webhook', text: 'SELECT * FROM webhooks WHERE id = $1' },
  deleteWebhook: {
    name: 'headway_delete_webhook',
    text: `WITH d AS (DELETE FROM webhook_deliveries WHERE webhook = $1)
      DELETE FROM webhooks WHERE id = $1 RETURNING id`,
  },
  rotate: {
    name: 'headway_rotate_webhook_secret',
    text: `UPDATE webhooks SET previous_secret = secret, previous_until = $2, secret = $3
      WHERE id = $1 RETURNING *`,
  },
  // ORDER BY and LIMIT apply before FOR UPDATE; rows another process is claiming
  // are skipped rather than waited for.
  claim: {
    name: 'headway_claim_deliveries',
    text: `WITH due AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_at <= $1 AND d.lease_until <= $1
          AND d.webhook <> ALL ($2::text[])
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
            WHERE p.status = 'pending' AND p.webhook = d.webhook AND p.job = d.job AND p.seq < d.seq)
        ORDER BY d.next_at, d.at
        LIMIT $3
        FOR UPDATE OF d SKIP LOCKED
      )
      UPDATE webhook_deliveries d SET lease_until = $4, lease_owner = $5
      FROM due, webhooks w
      WHERE d.id = due.id AND w.id = d.webhook
      RETURNING ${DELIVERY_COLUMNS}, d.data, d.state, d.lease_owner, ${CLAIMED_WEBHOOK_COLUMNS}`,
  },
  settle: {
    name: 'headway_settle_delivery',
    text: `UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_at = $4,
        lease_until = 0, lease_owner = NULL, updated_at = $5, last_attempt_at = $5,
        last_code = $6, last_error = $7, last_duration_ms = $8
      WHERE id = $1 AND lease_owner = $2`,
  },
  release: {
    name: 'headway_release_deliveries',
    text: `UPDATE webhook_deliveries SET lease_until = 0, lease_owner = NULL
      WHERE id = ANY ($1::text[]) AND lease_owner = $2`,
  },
  listDeliveries: {
    name: 'headway_list_deliveries',
    text: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d
      WHERE d.webhook = $1 ORDER BY d.updated_at DESC, d.id COLLATE "C" DESC LIMIT $2`,
  },
  prune: {
    name: 'headway_prune_deliveries',
    text: `DELETE FROM webhook_deliveries WHERE ctid = ANY(ARRAY(
      SELECT ctid FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1 LIMIT $2))`,
  },
} as const;

/** `WebhookStore` on the PostgreSQL store's pool. */
export class PostgresWebhookStore implements WebhookStore {
  constructor(private readonly db: PostgresPool) {}

  async createWebhook(w: WebhookRecord): Promise<void> {
    await this.db.run({
      ...SQL.insertWebhook,
      values: [w.id, w.url, w.events, w.owner, w.kind, w.secret, w.createdAt],
    });
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    const { rows } = await this.db.run<WebhookRow>(SQL.listWebhooks);
    return rows.map(webhookOfRow);
  }

  async getWebhook(id: string): Promise<WebhookRecord | null> {
    const { rows } = await this.db.run<WebhookRow>({ ...SQL.getWebhook, values: [id] });
    return rows.length === 0 ? null : webhookOfRow(rows[0]!);
  }

  async deleteWebhook(id: string): Promise<boolean> {
    const { rows } = await this.db.run({ ...SQL.deleteWebhook, values: [id] });
    return rows.length > 0;
  }

  async rotateSecret(id: string, secret: string, previousUntil: number): Promise<WebhookRecord | null> {
    const { rows } = await this.db.run<WebhookRow>({ ...SQL.rotate, values: [id, previousUntil, secret] });
    return rows.length === 0 ? null : webhookOfRow(rows[0]!);
  }

  async claimDeliveries(o: ClaimOptions): Promise<ClaimedDelivery[]> {
    if (o.limit <= 0) return [];
    const { rows } = await this.db.run<ClaimedRow>({
      ...SQL.claim,
      values: [o.now, o.skipWebhooks, o.limit, o.leaseUntil, o.owner],
    });
    return rows.map(claimedOfRow).sort((a, b) => a.nextAt - b.nextAt || a.createdAt - b.createdAt);
  }

  async settleDelivery(id: string, owner: string, o: DeliveryOutcome): Promise<void> {
    await this.db.run({
      ...SQL.settle,
      values: [id, owner, o.status, o.nextAt, o.attemptAt, o.code, o.error, o.durationMs],
    });
  }

  async releaseDeliveries(ids: readonly string[], owner: string): Promise<void> {
    if (ids.length === 0) return;
    await this.db.run({ ...SQL.release, values: [ids, owner] });
  }

  async listDeliveries(webhook: string, limit: number): Promise<DeliveryRecord[]> {
    const { rows } = await this.db.run<DeliveryRow>({ ...SQL.listDeliveries, values: [webhook, limit] });
    return rows.map(deliveryOfRow);
  }

  async pruneDeliveries(before: number, batchSize: number): Promise<number> {
    return (await this.db.run({ ...SQL.prune, values: [before, batchSize] })).rowCount ?? 0;
  }
}
