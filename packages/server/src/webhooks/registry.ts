/**
 * Creating, listing, rotating and deleting webhooks: ids, secrets and the
 * target check, over the store. What the REST routes and the dashboard see.
 */
import { randomBytes } from 'node:crypto';
import {
  type CreateWebhookInput,
  DEFAULT_WEBHOOK_EVENTS,
  ErrorCode,
  type Webhook,
  type WebhookDelivery,
  type WebhookWithSecret,
} from '@headway/protocol';
import { HeadwayError } from '../errors.js';
import type { DeliveryRecord, WebhookRecord, WebhookStore } from '../store/webhook-store.js';
import { checkTarget, type Resolve, type TargetPolicy } from './target.js';

export interface WebhookRegistryOptions {
  store: WebhookStore;
  policy: TargetPolicy;
  /** How long the previous secret keeps signing after a rotation, ms. */
  secretOverlapMs: number;
  now?: () => number;
  resolve?: Resolve;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class WebhookRegistry {
  private readonly now: () => number;

  constructor(private readonly o: WebhookRegistryOptions) {
    this.now = o.now ?? Date.now;
  }

  /** @throws HeadwayError HW_ERR_INVALID_VALUE or HW_ERR_WEBHOOK_TARGET_REFUSED for the URL. */
  async create(input: CreateWebhookInput): Promise<WebhookWithSecret> {
    const url = await checkTarget(input.url, this.o.policy, this.o.resolve);
    const record: WebhookRecord = {
      id: `wh_${randomBytes(12).toString('hex')}`,
      url: url.href,
      events: [...(input.events ?? DEFAULT_WEBHOOK_EVENTS)],
      owner: input.owner ?? null,
      kind: input.kind ?? null,
      secret: newSecret(),
      previousSecret: null,
      previousUntil: null,
      createdAt: this.now(),
    };
    await this.o.store.createWebhook(record);
    return { ...this.view(record), secret: record.secret };
  }

  async list(): Promise<Webhook[]> {
    return (await this.o.store.listWebhooks()).map((w) => this.view(w));
  }

  async deliveries(id: string, limit: number): Promise<WebhookDelivery[]> {
    if ((await this.o.store.getWebhook(id)) === null) throw notFound(id);
    return (await this.o.store.listDeliveries(id, limit)).map(deliveryView);
  }

  async delete(id: string): Promise<void> {
    if (!(await this.o.store.deleteWebhook(id))) throw notFound(id);
  }

  async rotateSecret(id: string): Promise<WebhookWithSecret> {
    const secret = newSecret();
    const record = await this.o.store.rotateSecret(id, secret, this.now() + this.o.secretOverlapMs);
    if (record === null) throw notFound(id);
    return { ...this.view(record), secret };
  }

  private view(w: WebhookRecord): Webhook {
    const overlapping = w.previousUntil !== null && w.previousUntil > this.now();
    return {
      id: w.id,
      url: w.url,
      events: w.events,
      owner: w.owner,
      kind: w.kind,
      createdAt: iso(w.createdAt),
      previousSecretExpiresAt: overlapping ? iso(w.previousUntil!) : null,
    };
  }
}

/** 32 random bytes, hex, with a prefix that says what it is. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('hex')}`;
}

function notFound(id: string): HeadwayError {
  return new HeadwayError(ErrorCode.NOT_FOUND, `webhook "${id}" not found`);
}

function deliveryView(d: DeliveryRecord): WebhookDelivery {
  return {
    id: d.id,
    job: d.job,
    seq: d.seq,
    type: `job.${d.kind}`,
    status: d.status,
    attempts: d.attempts,
    responseCode: d.lastCode,
    error: d.lastError,
    durationMs: d.lastDurationMs,
    lastAttemptAt: d.lastAttemptAt === null ? null : iso(d.lastAttemptAt),
    nextAttemptAt: d.status === 'pending' ? iso(d.nextAt) : null,
    createdAt: iso(d.createdAt),
  };
}
