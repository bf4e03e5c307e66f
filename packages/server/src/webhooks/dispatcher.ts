/**
 * The webhook dispatcher: takes due deliveries out of the store's outbox and
 * POSTs them, one process at a time per delivery (claims are leases), in seq
 * order per job and webhook (the store hands out only the first pending delivery
 * of each), with bounded concurrency in total and per webhook, a timeout per
 * attempt, capped exponential backoff with jitter between attempts, and a
 * circuit per webhook.
 *
 * It runs beside the hub and shares nothing with ingest or fan-out but the
 * store: a slow or dead receiver holds only its own attempt slots.
 */
import { randomUUID } from 'node:crypto';
import {
  backoffDelay,
  type JobEvent,
  type JobState,
  WEBHOOK_DELIVERY_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  type WebhookPayload,
} from '@headway/protocol';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { WebhookOptions } from '../options.js';
import type { ClaimedDelivery, DeliveryOutcome, WebhookStore } from '../store/webhook-store.js';
import { Circuits } from './circuit.js';
import { signatureHeader } from './signature.js';
import { checkTarget, type Resolve } from './target.js';

/** Rows deleted per statement when settled deliveries are pruned. */
const PRUNE_BATCH = 500;
/** Time between prunes of settled deliveries, ms. */
const PRUNE_INTERVAL_MS = 3_600_000; // 1 hour
const DAY_MS = 86_400_000;

export interface WebhookDispatcherOptions {
  store: WebhookStore;
  options: WebhookOptions;
  production: boolean;
  logger: Logger;
  metrics?: Pick<
    Metrics,
    | 'webhookAttempts'
    | 'webhookDeliveries'
    | 'webhookAttemptSeconds'
    | 'webhooksInFlight'
    | 'webhookCircuitOpens'
  >;
  /** The clock, ms. Default `Date.now`. */
  now?: () => number;
  /** Jitter source of the backoff. Default `Math.random`. */
  random?: () => number;
  /** Host name resolution of the target check. */
  resolve?: Resolve;
  /** The HTTP client. Default the global `fetch` (undici). */
  fetch?: typeof fetch;
}

interface AttemptResult {
  ok: boolean;
  code: number | null;
  error: string | null;
  retryAfterMs?: number;
}

export class WebhookDispatcher {
  private readonly store: WebhookStore;
  private readonly o: WebhookOptions;
  private readonly now: () => number;
  private readonly circuits: Circuits;
  /** Lease tokens are this process's id and a claim counter. */
  private readonly processId = randomUUID();
  private claims = 0;
  private inFlight = 0;
  private readonly perWebhook = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  private readonly aborts = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private pollSoon = false;
  private stopped = true;
  private prunedAt = 0;

  constructor(private readonly ctx: WebhookDispatcherOptions) {
    this.store = ctx.store;
    this.o = ctx.options;
    this.now = ctx.now ?? Date.now;
    this.circuits = new Circuits(this.o.circuitFailures, this.o.circuitOpenMs);
    if (this.o.leaseMs <= this.o.timeoutMs) {
      throw new TypeError(
        'webhooks: "leaseMs" must be longer than "timeoutMs", or two processes could attempt one delivery at once',
      );
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Look for due deliveries now (after a slot freed, or when new ones may be due). */
  wake(): void {
    if (this.stopped) return;
    if (this.polling) this.pollSoon = true;
    else this.schedule(0);
  }

  /** Stop polling and abort the attempts under way; their deliveries are given back to the outbox. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.aborts.abort();
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, ms);
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.polling) return;
    this.polling = true;
    try {
      await this.claimAndLaunch();
      await this.prune();
    } catch (err) {
      this.ctx.logger.warn({ err }, 'webhook outbox poll failed');
    } finally {
      this.polling = false;
      if (!this.stopped) this.schedule(this.pollSoon ? 0 : this.o.pollMs);
      this.pollSoon = false;
    }
  }

  private async claimAndLaunch(): Promise<void> {
    const free = this.o.concurrency - this.inFlight;
    if (free <= 0) return;
    const now = this.now();
    const skip = new Set(this.circuits.open(now));
    for (const [id, n] of this.perWebhook) if (n >= this.capOf(id, now)) skip.add(id);
    const owner = `${this.processId}:${++this.claims}`;
    const claimed = await this.store.claimDeliveries({
      now,
      leaseUntil: now + this.o.leaseMs,
      owner,
      limit: free,
      skipWebhooks: [...skip],
    });
    const giveBack: string[] = [];
    for (const d of claimed) {
      if (this.stopped || (this.perWebhook.get(d.webhook) ?? 0) >= this.capOf(d.webhook, now))
        giveBack.push(d.id);
      else this.launch(d);
    }
    await this.store.releaseDeliveries(giveBack, owner);
    // A full claim means more may be due at once.
    if (claimed.length === free && giveBack.length === 0) this.pollSoon = true;
  }

  /** Attempts allowed in flight to one webhook: one trial while its circuit is half-open. */
  private capOf(webhook: string, now: number): number {
    return this.circuits.state(webhook, now) === 'half-open' ? 1 : this.o.concurrencyPerWebhook;
  }

  private launch(d: ClaimedDelivery): void {
    this.inFlight++;
    this.perWebhook.set(d.webhook, (this.perWebhook.get(d.webhook) ?? 0) + 1);
    this.ctx.metrics?.webhooksInFlight.inc();
    const run = this.deliver(d)
      .catch((err) => this.ctx.logger.warn({ err, delivery: d.id }, 'webhook delivery could not be settled'))
      .finally(() => {
        this.inFlight--;
        const n = (this.perWebhook.get(d.webhook) ?? 1) - 1;
        if (n > 0) this.perWebhook.set(d.webhook, n);
        else this.perWebhook.delete(d.webhook);
        this.ctx.metrics?.webhooksInFlight.dec();
        this.running.delete(run);
        this.wake();
      });
    this.running.add(run);
  }

  /** One attempt of `d`, and its outcome written back. */
  private async deliver(d: ClaimedDelivery): Promise<void> {
    const started = performance.now();
    const result = await this.attempt(d);
    if (result === null) {
      // Stopped mid-attempt: the next process (or start) tries again at once.
      await this.store.releaseDeliveries([d.id], d.leaseOwner);
      return;
    }
    const durationMs = Math.round(performance.now() - started);
    this.ctx.metrics?.webhookAttemptSeconds.observe(durationMs / 1000);
    this.ctx.metrics?.webhookAttempts.inc({ result: result.ok ? 'success' : 'failure' });
    const at = this.now();
    const outcome: DeliveryOutcome = {
      status: 'succeeded',
      nextAt: 0,
      attemptAt: at,
      code: result.code,
      error: result.error,
      durationMs,
    };
    if (result.ok) {
      this.circuits.succeeded(d.webhook);
    } else {
      if (this.circuits.failed(d.webhook, at)) this.ctx.metrics?.webhookCircuitOpens.inc();
      const deadline = d.createdAt + this.o.retryForMs;
      if (at >= deadline) {
        outcome.status = 'failed';
      } else {
        const retryAfter =
          result.retryAfterMs === undefined ? undefined : Math.min(result.retryAfterMs, this.o.backoffMaxMs);
        const delay = backoffDelay(
          d.attempts + 1,
          { initialDelayMs: this.o.backoffInitialMs, maxDelayMs: this.o.backoffMaxMs },
          retryAfter,
          this.ctx.random,
        );
        outcome.status = 'pending';
        // The last attempt is made at the end of the window rather than after it.
        outcome.nextAt = Math.min(Math.round(at + delay), deadline);
      }
    }
    if (outcome.status !== 'pending') this.ctx.metrics?.webhookDeliveries.inc({ status: outcome.status });
    if (outcome.status === 'failed') {
      this.ctx.logger.warn(
        { webhook: d.webhook, delivery: d.id, job: d.job, seq: d.seq, attempts: d.attempts + 1 },
        'webhook delivery failed for good',
      );
    }
    await this.store.settleDelivery(d.id, d.leaseOwner, outcome);
  }

  /** POST the delivery; null when the dispatcher stopped during the attempt. */
  private async attempt(d: ClaimedDelivery): Promise<AttemptResult | null> {
    const w = d.webhookRecord;
    try {
      await checkTarget(
        w.url,
        { production: this.ctx.production, allowPrivate: this.o.allowPrivate, allowHttp: this.o.allowHttp },
        this.ctx.resolve,
      );
      const body = JSON.stringify(payloadOf(d));
      const now = this.now();
      const secrets = [w.secret];
      if (w.previousSecret !== null && w.previousUntil !== null && now < w.previousUntil)
        secrets.push(w.previousSecret);
      const res = await (this.ctx.fetch ?? fetch)(w.url, {
        method: 'POST',
        body,
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Headway-Webhooks/1',
          [WEBHOOK_DELIVERY_HEADER]: d.id,
          [WEBHOOK_SIGNATURE_HEADER]: signatureHeader(secrets, Math.floor(now / 1000), body),
        },
        signal: AbortSignal.any([AbortSignal.timeout(this.o.timeoutMs), this.aborts.signal]),
      });
      // The answer's body is not read: only its status counts, and the socket is freed.
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) return { ok: true, code: res.status, error: null };
      return {
        ok: false,
        code: res.status,
        error: `HTTP ${res.status}`,
        retryAfterMs: retryAfterMs(res.headers.get('retry-after')),
      };
    } catch (err) {
      if (this.aborts.signal.aborted) return null;
      return { ok: false, code: null, error: describe(err, this.o.timeoutMs) };
    }
  }

  /** Delete settled deliveries past `keepDays`, once an hour. */
  private async prune(): Promise<void> {
    const now = this.now();
    if (now - this.prunedAt < PRUNE_INTERVAL_MS) return;
    this.prunedAt = now;
    const before = now - this.o.keepDays * DAY_MS;
    while (!this.stopped && (await this.store.pruneDeliveries(before, PRUNE_BATCH)) === PRUNE_BATCH) {}
  }
}

/** The body of a delivery: the same on every attempt. */
export function payloadOf(d: ClaimedDelivery): WebhookPayload {
  const at = new Date(d.createdAt).toISOString();
  const event = { job: d.job, seq: d.seq, kind: d.kind, data: d.data, at } as JobEvent;
  return { id: d.id, type: `job.${d.kind}`, at, job: d.state as JobState, event };
}

/** A `Retry-After` of seconds, in ms; dates and nonsense are ignored. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null || !/^\d{1,9}$/.test(header.trim())) return undefined;
  return Number(header.trim()) * 1000;
}

/** Why an attempt got no answer, for the deliveries list. */
function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && code.startsWith('HW_ERR_')) return `${code}: ${(err as Error).message}`;
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (typeof cause?.code === 'string')
    return `${cause.code}${typeof cause.message === 'string' ? `: ${cause.message}` : ''}`;
  return err instanceof Error ? err.message : String(err);
}
