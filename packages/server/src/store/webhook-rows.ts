/**
 * Webhook and delivery rows as both SQL stores read them. PostgreSQL returns
 * BIGINTs as strings and JSONB parsed, SQLite numbers and JSON text; these
 * mappings accept both.
 */
import type { DeliveryStatus, EventKind } from '@headway/protocol';
import type { ClaimedDelivery, DeliveryRecord, WebhookRecord } from './webhook-store.js';

type Num = number | string;

export interface WebhookRow {
  id: string;
  url: string;
  events: string | string[];
  owner: string | null;
  job_kind: string | null;
  secret: string;
  previous_secret: string | null;
  previous_until: Num | null;
  created_at: Num;
}

export interface DeliveryRow {
  id: string;
  webhook: string;
  job: string;
  seq: Num;
  kind: string;
  at: Num;
  status: string;
  attempts: Num;
  next_at: Num;
  last_attempt_at: Num | null;
  last_code: Num | null;
  last_error: string | null;
  last_duration_ms: Num | null;
}

/** A claimed row: the delivery, its event data and state, and its webhook's columns (prefixed `w_`). */
export interface ClaimedRow extends DeliveryRow {
  data: unknown;
  state: unknown;
  lease_owner: string;
  w_url: string;
  w_events: string | string[];
  w_owner: string | null;
  w_job_kind: string | null;
  w_secret: string;
  w_previous_secret: string | null;
  w_previous_until: Num | null;
  w_created_at: Num;
}

/** The columns of a delivery row, for `SELECT`s of both stores. */
export const DELIVERY_COLUMNS =
  'd.id, d.webhook, d.job, d.seq, d.kind, d.at, d.status, d.attempts, d.next_at, d.last_attempt_at, d.last_code, d.last_error, d.last_duration_ms';

/** The webhook columns of a claimed row. */
export const CLAIMED_WEBHOOK_COLUMNS =
  'w.url AS w_url, w.events AS w_events, w.owner AS w_owner, w.job_kind AS w_job_kind, w.secret AS w_secret, w.previous_secret AS w_previous_secret, w.previous_until AS w_previous_until, w.created_at AS w_created_at';

const orNull = (v: Num | null): number | null => (v === null ? null : Number(v));

export function webhookOfRow(row: WebhookRow): WebhookRecord {
  return {
    id: row.id,
    url: row.url,
    events: (typeof row.events === 'string' ? JSON.parse(row.events) : row.events) as EventKind[],
    owner: row.owner,
    kind: row.job_kind,
    secret: row.secret,
    previousSecret: row.previous_secret,
    previousUntil: orNull(row.previous_until),
    createdAt: Number(row.created_at),
  };
}

export function deliveryOfRow(row: DeliveryRow): DeliveryRecord {
  return {
    id: row.id,
    webhook: row.webhook,
    job: row.job,
    seq: Number(row.seq),
    kind: row.kind as EventKind,
    status: row.status as DeliveryStatus,
    attempts: Number(row.attempts),
    nextAt: Number(row.next_at),
    createdAt: Number(row.at),
    lastAttemptAt: orNull(row.last_attempt_at),
    lastCode: orNull(row.last_code),
    lastError: row.last_error,
    lastDurationMs: orNull(row.last_duration_ms),
  };
}

export function claimedOfRow(row: ClaimedRow): ClaimedDelivery {
  return {
    ...deliveryOfRow(row),
    data: typeof row.data === 'string' ? JSON.parse(row.data) : row.data,
    state: typeof row.state === 'string' ? JSON.parse(row.state) : row.state,
    leaseOwner: row.lease_owner,
    webhookRecord: webhookOfRow({
      id: row.webhook,
      url: row.w_url,
      events: row.w_events,
      owner: row.w_owner,
      job_kind: row.w_job_kind,
      secret: row.w_secret,
      previous_secret: row.w_previous_secret,
      previous_until: row.w_previous_until,
      created_at: row.w_created_at,
    }),
  };
}
