/**
 * The webhooks part of a `Store`: the webhooks themselves and their delivery
 * outbox. A delivery row is written by the store's `commit`, in the same
 * transaction as the event that causes it (one row per matching webhook), so an
 * acknowledged event is never without its deliveries; this interface is how the
 * dispatcher takes them out again.
 *
 * What it leaves out: it sends nothing and keeps no timers. Claims are leases
 * (`leaseUntil`, `leaseOwner`), so a process that dies mid-attempt leaves its
 * deliveries to whichever process claims after the lease ends; only the process
 * holding the lease can settle a delivery.
 */
import type { DeliveryStatus, EventKind } from '@headway/protocol';

/** A webhook as stored. Times are ms since the epoch. */
export interface WebhookRecord {
  id: string;
  url: string;
  events: EventKind[];
  owner: string | null;
  /** Only jobs whose state has this `kind`. */
  kind: string | null;
  secret: string;
  /** The secret before the last rotation, still signing until `previousUntil`. */
  previousSecret: string | null;
  previousUntil: number | null;
  createdAt: number;
}

/** A delivery as listed for its webhook. */
export interface DeliveryRecord {
  id: string;
  webhook: string;
  job: string;
  seq: number;
  kind: EventKind;
  status: DeliveryStatus;
  attempts: number;
  /** Due time of the next attempt (pending only). */
  nextAt: number;
  /** The event's time: when the delivery was recorded. */
  createdAt: number;
  lastAttemptAt: number | null;
  lastCode: number | null;
  lastError: string | null;
  lastDurationMs: number | null;
}

/** A delivery leased to one process, with what it takes to send it. */
export interface ClaimedDelivery extends DeliveryRecord {
  /** Event data, parsed. */
  data: unknown;
  /** The job's state stored with the event, parsed. */
  state: unknown;
  /** Lease token: only this claim may settle or release the delivery. */
  leaseOwner: string;
  webhookRecord: WebhookRecord;
}

export interface ClaimOptions {
  /** The claiming process's clock, ms. */
  now: number;
  /** Lease end, ms. */
  leaseUntil: number;
  /** Lease token written on each claimed row. */
  owner: string;
  /** Most deliveries to claim. */
  limit: number;
  /** Webhooks not to claim for (open circuits, full concurrency). */
  skipWebhooks: string[];
}

/** The result of one attempt, written by `settle`. */
export interface DeliveryOutcome {
  status: DeliveryStatus;
  /** Due time of the next attempt when still pending. */
  nextAt: number;
  attemptAt: number;
  code: number | null;
  error: string | null;
  durationMs: number;
}

export interface WebhookStore {
  createWebhook(webhook: WebhookRecord): Promise<void>;
  listWebhooks(): Promise<WebhookRecord[]>;
  getWebhook(id: string): Promise<WebhookRecord | null>;
  /** Delete the webhook and its deliveries; false when there was none. */
  deleteWebhook(id: string): Promise<boolean>;
  /** Replace the secret, keeping the old one valid until `previousUntil`; null when there is no such webhook. */
  rotateSecret(id: string, secret: string, previousUntil: number): Promise<WebhookRecord | null>;

  /**
   * Lease due deliveries: pending, `nextAt` reached, not leased, and the first
   * pending one of their job for their webhook (so each job's deliveries go out
   * in seq order), earliest due first.
   */
  claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]>;
  /** Record an attempt's outcome, if `owner` still holds the lease. */
  settleDelivery(id: string, owner: string, outcome: DeliveryOutcome): Promise<void>;
  /** Give leased deliveries back unattempted. */
  releaseDeliveries(ids: readonly string[], owner: string): Promise<void>;
  /** A webhook's deliveries, most recently changed first. */
  listDeliveries(webhook: string, limit: number): Promise<DeliveryRecord[]>;
  /** Delete settled deliveries last changed before `before` (ms); returns how many. */
  pruneDeliveries(before: number, batchSize: number): Promise<number>;
}
