/**
 * The webhooks and the delivery outbox of the SQLite store. Writers of one file
 * take its write lock in turn (`BEGIN IMMEDIATE`), so a claim is atomic even with
 * several processes on one file.
 */
import type Database from 'better-sqlite3';
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
 * Run by `commit` for each stored event, in its transaction: one pending delivery
 * per webhook that wants the event's kind and matches the job's owner and kind.
 * With no webhooks it reads one empty table.
 */
export const ENQUEUE_DELIVERIES = `INSERT INTO webhook_deliveries
    (id, webhook, job, seq, kind, at, data, state, status, attempts, next_at, lease_until, updated_at)
  SELECT 'dl_' || lower(hex(randomblob(16))), w.id, @job, @seq, @kind, @at, @data, @state, 'pending', 0, 0, 0, @at
  FROM webhooks w
  WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = @kind)
    AND (w.owner IS NULL OR w.owner = @owner)
    AND (w.job_kind IS NULL OR w.job_kind = json_extract(@state, '$.kind'))`;

/**
 * The event kinds any webhook wants, read once per commit inside its transaction
 * (so never stale): events of other kinds skip `ENQUEUE_DELIVERIES` altogether.
 */
export const WEBHOOK_KINDS = 'SELECT DISTINCT k.value FROM webhooks w, json_each(w.events) k';

/** The parameters of `ENQUEUE_DELIVERIES`. */
export interface EnqueueParams {
  job: string;
  seq: number;
  kind: string;
  at: number;
  data: string;
  state: string;
  owner: string;
}

const SQL = {
  insertWebhook: `INSERT INTO webhooks (id, url, events, owner, job_kind, secret, previous_secret, previous_until, created_at)
    VALUES (@id, @url, @events, @owner, @kind, @secret, NULL, NULL, @createdAt)`,
  listWebhooks: 'SELECT * FROM webhooks ORDER BY created_at, id',
  getWebhook: 'SELECT * FROM webhooks WHERE id = ?',
  deleteDeliveriesOf: 'DELETE FROM webhook_deliveries WHERE webhook = ?',
  deleteWebhook: 'DELETE FROM webhooks WHERE id = ?',
  rotate: `UPDATE webhooks SET previous_secret = secret, previous_until = @until, secret = @secret
    WHERE id = @id`,
  due: `SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_at <= @now AND d.lease_until <= @now
      AND d.webhook NOT IN (SELECT value FROM json_each(@skip))
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
        WHERE p.status = 'pending' AND p.webhook = d.webhook AND p.job = d.job AND p.seq < d.seq)
    ORDER BY d.next_at, d.at LIMIT @limit`,
  lease: 'UPDATE webhook_deliveries SET lease_until = ?, lease_owner = ? WHERE id = ?',
  claimed: `SELECT ${DELIVERY_COLUMNS}, d.data, d.state, d.lease_owner, ${CLAIMED_WEBHOOK_COLUMNS}
    FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook
    WHERE d.id IN (SELECT value FROM json_each(?))`,
  settle: `UPDATE webhook_deliveries SET status = @status, attempts = attempts + 1, next_at = @nextAt,
      lease_until = 0, lease_owner = NULL, updated_at = @attemptAt, last_attempt_at = @attemptAt,
      last_code = @code, last_error = @error, last_duration_ms = @durationMs
    WHERE id = @id AND lease_owner = @owner`,
  release: `UPDATE webhook_deliveries SET lease_until = 0, lease_owner = NULL
    WHERE id IN (SELECT value FROM json_each(?)) AND lease_owner = ?`,
  listDeliveries: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d
    WHERE d.webhook = ? ORDER BY d.updated_at DESC, d.id DESC LIMIT ?`,
  prune: `DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ? LIMIT ?)`,
} as const;

function prepareAll(db: Database.Database) {
  return {
    insertWebhook: db.prepare(SQL.insertWebhook),
    listWebhooks: db.prepare<[], WebhookRow>(SQL.listWebhooks),
    getWebhook: db.prepare<[string], WebhookRow>(SQL.getWebhook),
    deleteDeliveriesOf: db.prepare<[string]>(SQL.deleteDeliveriesOf),
    deleteWebhook: db.prepare<[string]>(SQL.deleteWebhook),
    rotate: db.prepare<{ id: string; until: number; secret: string }>(SQL.rotate),
    due: db.prepare<{ now: number; skip: string; limit: number }, string>(SQL.due).pluck(),
    lease: db.prepare<[number, string, string]>(SQL.lease),
    claimed: db.prepare<[string], ClaimedRow>(SQL.claimed),
    settle: db.prepare(SQL.settle),
    release: db.prepare<[string, string]>(SQL.release),
    listDeliveries: db.prepare<[string, number], DeliveryRow>(SQL.listDeliveries),
    prune: db.prepare<[number, number]>(SQL.prune),
  };
}

type Statements = ReturnType<typeof prepareAll>;

/** `WebhookStore` on the SQLite store's database; `run` maps failures to store errors. */
export class SqliteWebhookStore implements WebhookStore {
  private stmts: Statements | null = null;

  constructor(
    private readonly db: Database.Database,
    private readonly run: <T>(fn: () => T) => T,
  ) {}

  async createWebhook(w: WebhookRecord): Promise<void> {
    this.use((s) =>
      s.insertWebhook.run({
        id: w.id,
        url: w.url,
        events: JSON.stringify(w.events),
        owner: w.owner,
        kind: w.kind,
        secret: w.secret,
        createdAt: w.createdAt,
      }),
    );
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    return this.use((s) => s.listWebhooks.all().map(webhookOfRow));
  }

  async getWebhook(id: string): Promise<WebhookRecord | null> {
    return this.use((s) => {
      const row = s.getWebhook.get(id);
      return row === undefined ? null : webhookOfRow(row);
    });
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return this.use((s) =>
      this.db
        .transaction(() => {
          s.deleteDeliveriesOf.run(id);
          return s.deleteWebhook.run(id).changes > 0;
        })
        .immediate(),
    );
  }

  async rotateSecret(id: string, secret: string, previousUntil: number): Promise<WebhookRecord | null> {
    return this.use((s) => {
      if (s.rotate.run({ id, until: previousUntil, secret }).changes === 0) return null;
      const row = s.getWebhook.get(id);
      return row === undefined ? null : webhookOfRow(row);
    });
  }

  async claimDeliveries(o: ClaimOptions): Promise<ClaimedDelivery[]> {
    if (o.limit <= 0) return [];
    return this.use((s) =>
      this.db
        .transaction(() => {
          const ids = s.due.all({ now: o.now, skip: JSON.stringify(o.skipWebhooks), limit: o.limit });
          if (ids.length === 0) return [];
          for (const id of ids) s.lease.run(o.leaseUntil, o.owner, id);
          const order = new Map(ids.map((id, i) => [id, i]));
          return s.claimed
            .all(JSON.stringify(ids))
            .map(claimedOfRow)
            .sort((a, b) => order.get(a.id)! - order.get(b.id)!);
        })
        .immediate(),
    );
  }

  async settleDelivery(id: string, owner: string, outcome: DeliveryOutcome): Promise<void> {
    this.use((s) => s.settle.run({ id, owner, ...outcome }));
  }

  async releaseDeliveries(ids: readonly string[], owner: string): Promise<void> {
    if (ids.length === 0) return;
    this.use((s) => s.release.run(JSON.stringify(ids), owner));
  }

  async listDeliveries(webhook: string, limit: number): Promise<DeliveryRecord[]> {
    return this.use((s) => s.listDeliveries.all(webhook, limit).map(deliveryOfRow));
  }

  async pruneDeliveries(before: number, batchSize: number): Promise<number> {
    return this.use((s) => s.prune.run(before, batchSize).changes);
  }

  /** Prepared lazily: the tables exist only once the store is migrated. */
  private use<T>(fn: (s: Statements) => T): T {
    return this.run(() => {
      this.stmts ??= prepareAll(this.db);
      return fn(this.stmts);
    });
  }
}
