/**
 * Webhooks end to end in one process (SQLite): real receivers on port 0,
 * signatures checked as a receiver would, retries with a fast injected backoff,
 * seq order per job, bounded concurrency, the REST routes and the production
 * target check.
 */
import {
  ErrorCode,
  WebhookDeliveryListSchema,
  WebhookListSchema,
  WebhookWithSecretSchema,
} from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { afterEach, describe, expect, it } from 'vitest';
import { signatureHeader, verifyWebhookSignature } from '../src/webhooks/signature.js';
import { isPrivateAddress } from '../src/webhooks/target.js';
import { type Receiver, seqsByJob, startReceiver } from './webhook-receiver.js';

/** Retries within milliseconds, so a test sees several attempts at once. */
const FAST = { pollMs: 10, backoffInitialMs: 5, backoffMaxMs: 20, circuitFailures: 1000 };

let n = 0;
const uid = (prefix = 'wjob') => `${prefix}-${process.pid}-${++n}`;

const hubs: TestHub[] = [];
const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
  for (const h of hubs.splice(0)) await h.close();
});

async function hub(options: Parameters<typeof startHub>[0] = {}): Promise<TestHub> {
  const h = await startHub({ ...options, webhooks: { ...FAST, ...options.webhooks } });
  hubs.push(h);
  return h;
}

async function receiver(answer?: Receiver['answer']): Promise<Receiver> {
  const r = await startReceiver(answer);
  receivers.push(r);
  return r;
}

function expectSchema(schema: TSchema, value: unknown): void {
  const first = TypeCompiler.Compile(schema).Errors(value).First();
  expect(first && `${first.path} ${first.message}`).toBeUndefined();
}

async function createWebhook(h: TestHub, body: Record<string, unknown>) {
  const res = await h.post('/v1/webhooks', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; secret: string };
}

/** Create a job and report `kinds` one request each; returns its id. */
async function runJob(h: TestHub, kinds: string[], owner = 'alice'): Promise<string> {
  const id = uid();
  expect((await h.post('/v1/jobs', { id, owner })).status).toBe(201);
  for (const kind of kinds) {
    const event =
      kind === 'progress'
        ? { kind, percent: 50 }
        : kind === 'failed'
          ? { kind, error: { code: 'X', message: 'x' } }
          : { kind };
    const res = await h.post(`/v1/jobs/${id}/events`, { events: [event] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  return id;
}

describe('signatures', () => {
  it('match the documented example, and verify only with the right secret and a recent time', () => {
    const body = '{"id":"dl_1","type":"job.completed"}';
    const header = signatureHeader(['whsec_example'], 1_700_000_000, body);
    // The same vector is checked by the Python client's tests and shown in docs/webhooks.md.
    expect(header).toBe('t=1700000000,v1=5ce831097e66080c97192429bd8b88462f11a2d6aa4f3a248d04d3e2b715de42');
    const now = 1_700_000_000_000;
    expect(verifyWebhookSignature('whsec_example', header, body, { now })).toBe(true);
    expect(verifyWebhookSignature('whsec_other', header, body, { now })).toBe(false);
    expect(verifyWebhookSignature('whsec_example', header, `${body} `, { now })).toBe(false);
    expect(verifyWebhookSignature('whsec_example', header, body, { now: now + 301_000 })).toBe(false);
    expect(
      verifyWebhookSignature('whsec_example', header, body, { now: now + 301_000, toleranceSeconds: 400 }),
    ).toBe(true);
    expect(verifyWebhookSignature('whsec_example', 'v1=abc', body, { now })).toBe(false);
    expect(verifyWebhookSignature('whsec_example', undefined, body, { now })).toBe(false);
    const rotated = signatureHeader(['whsec_new', 'whsec_example'], 1_700_000_000, body);
    expect(verifyWebhookSignature('whsec_example', rotated, body, { now })).toBe(true);
    expect(verifyWebhookSignature('whsec_new', rotated, body, { now })).toBe(true);
  });
});

describe('delivery', () => {
  it('POSTs each outcome, signed, to a real receiver that verifies it', async () => {
    const h = await hub();
    const r = await receiver();
    const { id: webhookId, secret } = await createWebhook(h, { url: r.url });
    const job = await runJob(h, ['progress', 'completed']);
    const [req] = await waitFor(() => r.requests.length === 1 && r.requests, 'the delivery');
    expect(req!.json).toMatchObject({
      id: req!.delivery,
      type: 'job.completed',
      job: { id: job, status: 'completed' },
      event: { job, seq: 3, kind: 'completed' },
    });
    expect(req!.json.at).toBe((req!.json.event as unknown as { at: string }).at);
    expect(verifyWebhookSignature(secret, req!.signature, req!.body)).toBe(true);
    expect(verifyWebhookSignature(`${secret}x`, req!.signature, req!.body)).toBe(false);
    const t = Number(/t=(\d+)/.exec(req!.signature)![1]);
    expect(verifyWebhookSignature(secret, req!.signature, req!.body, { now: (t + 301) * 1000 })).toBe(false);

    const list = await waitFor(async () => {
      const res = await h.get(`/v1/webhooks/${webhookId}/deliveries`);
      return res.body.deliveries[0]?.status === 'succeeded' && res.body;
    }, 'the delivery settled');
    expectSchema(WebhookDeliveryListSchema, list);
    expect(list.deliveries).toEqual([
      expect.objectContaining({
        id: req!.delivery,
        job,
        seq: 3,
        type: 'job.completed',
        attempts: 1,
        responseCode: 200,
      }),
    ]);
  });

  it('retries a receiver that fails three times, with the same delivery id, until it succeeds', async () => {
    const h = await hub();
    const r = await receiver((_req, i) => (i < 3 ? 500 : 200));
    const { id: webhookId } = await createWebhook(h, { url: r.url });
    await runJob(h, ['completed']);
    await waitFor(() => r.requests.length >= 4, 'four attempts');
    expect(new Set(r.requests.map((q) => q.delivery)).size).toBe(1);
    expect(new Set(r.requests.map((q) => q.body)).size).toBe(1);
    const { body } = await waitFor(async () => {
      const res = await h.get(`/v1/webhooks/${webhookId}/deliveries`);
      return res.body.deliveries[0]?.status === 'succeeded' && res;
    }, 'the delivery settled');
    expect(body.deliveries[0]).toMatchObject({
      attempts: 4,
      responseCode: 200,
      error: null,
      nextAttemptAt: null,
    });
    expect(r.requests).toHaveLength(4);
    const metrics = (await h.get('/metrics', null)).body as string;
    expect(metrics).toMatch(/headway_webhook_attempts_total\{result="failure"\} 3/);
    expect(metrics).toMatch(/headway_webhook_deliveries_total\{status="succeeded"\} 1/);
  });

  it('marks a delivery failed once its retry window is over, visible in the list and the metrics', async () => {
    const h = await hub({ webhooks: { retryForMs: 1 } });
    const r = await receiver(() => 503);
    const { id: webhookId } = await createWebhook(h, { url: r.url });
    await runJob(h, ['failed']);
    const { body } = await waitFor(async () => {
      const res = await h.get(`/v1/webhooks/${webhookId}/deliveries`);
      return res.body.deliveries[0]?.status === 'failed' && res;
    }, 'the delivery failed');
    expect(body.deliveries[0]).toMatchObject({ type: 'job.failed', responseCode: 503, error: 'HTTP 503' });
    const metrics = (await h.get('/metrics', null)).body as string;
    expect(metrics).toMatch(/headway_webhook_deliveries_total\{status="failed"\} 1/);
  });

  it("delivers each job's events in seq order, a failing one holding back the next", async () => {
    const h = await hub();
    // The first attempt of every seq-2 delivery fails.
    const failed = new Set<string>();
    const r = await receiver((req) => {
      if (req.json.event.seq !== 2 || failed.has(req.delivery)) return 200;
      failed.add(req.delivery);
      return 500;
    });
    await createWebhook(h, { url: r.url, events: ['progress', 'completed'] });
    const jobs = await Promise.all(
      [1, 2, 3].map(() => runJob(h, ['progress', 'progress', 'progress', 'completed'])),
    );
    await waitFor(
      () =>
        seqsByJob(r.requests).size === 3 && [...seqsByJob(r.requests).values()].every((s) => s.length === 4),
      'every event',
    );
    for (const job of jobs) expect(seqsByJob(r.requests).get(job)).toEqual([2, 3, 4, 5]);
    expect(failed.size).toBe(3);
  });

  it('filters by event kind, owner and job kind, in the commit of the event', async () => {
    const h = await hub();
    const r = await receiver();
    const bobs = await createWebhook(h, { url: r.url, owner: 'bob' });
    const transcodes = await createWebhook(h, { url: r.url, kind: 'transcode', events: ['created'] });
    const alices = await runJob(h, ['completed'], 'alice');
    const bobsJob = await runJob(h, ['completed'], 'bob');
    // Deliveries are written with their events: once a report is answered, the outbox is final.
    const listed = async (id: string) =>
      ((await h.get(`/v1/webhooks/${id}/deliveries`)).body.deliveries as { job: string }[]).map((d) => d.job);
    expect(await listed(bobs.id)).toEqual([bobsJob]);
    expect(await listed(transcodes.id)).toEqual([]);
    expect(alices).not.toBe(bobsJob);
  });

  it('keeps a hanging receiver to its concurrency and never slows reports', async () => {
    const h = await hub({ webhooks: { concurrencyPerWebhook: 2, timeoutMs: 60_000, leaseMs: 120_000 } });
    const r = await receiver(() => 'hang');
    await createWebhook(h, { url: r.url });
    // Every report is answered while the receiver holds every request it got.
    const jobs = await Promise.all(Array.from({ length: 10 }, () => runJob(h, ['completed'])));
    expect(jobs).toHaveLength(10);
    await waitFor(() => r.requests.length === 2, 'two attempts in flight');
    // A sentinel: a healthy webhook on the same hub gets a later job's outcome, so the
    // dispatcher has looked for due deliveries since, and left the hanging one at two.
    const sentinel = await receiver();
    await createWebhook(h, { url: sentinel.url, owner: 'sentinel' });
    await runJob(h, ['completed'], 'sentinel');
    await waitFor(() => sentinel.requests.length === 1, 'the sentinel');
    expect(r.maxOpen).toBe(2);
    expect(r.requests).toHaveLength(2);
  });
});

describe('routes', () => {
  it('list without secrets, rotate with an overlap that signs twice, and delete', async () => {
    const h = await hub();
    const r = await receiver();
    const created = await createWebhook(h, { url: r.url });
    expectSchema(WebhookWithSecretSchema, created);
    expect(created).toMatchObject({ events: ['completed', 'failed', 'cancelled'], owner: null, kind: null });
    const list = await h.get('/v1/webhooks');
    expectSchema(WebhookListSchema, list.body);
    expect(list.body.webhooks).toHaveLength(1);
    expect(list.body.webhooks[0].secret).toBeUndefined();

    const rotated = await h.post(`/v1/webhooks/${created.id}/rotate-secret`, {});
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(created.secret);
    expect(rotated.body.previousSecretExpiresAt).not.toBeNull();
    await runJob(h, ['completed']);
    const [req] = await waitFor(() => r.requests.length === 1 && r.requests, 'the delivery');
    expect(req!.signature.match(/v1=/g)).toHaveLength(2);
    expect(verifyWebhookSignature(created.secret, req!.signature, req!.body)).toBe(true);
    expect(verifyWebhookSignature(rotated.body.secret, req!.signature, req!.body)).toBe(true);

    expect((await h.request('DELETE', `/v1/webhooks/${created.id}`)).status).toBe(204);
    const gone = await h.request('DELETE', `/v1/webhooks/${created.id}`);
    expect([gone.status, gone.body.error.code]).toEqual([404, ErrorCode.NOT_FOUND]);
    expect((await h.get(`/v1/webhooks/${created.id}/deliveries`)).status).toBe(404);
  });

  it('refuses browsers, lets admin tokens read, and validates bodies', async () => {
    const h = await hub();
    const user = await h.token('alice');
    const admin = await h.token('root', { admin: true });
    const res = await h.post('/v1/webhooks', { url: 'https://example.com/' }, user);
    expect([res.status, res.body.error.code]).toEqual([403, ErrorCode.FORBIDDEN]);
    expect((await h.get('/v1/webhooks', user)).status).toBe(403);
    expect((await h.get('/v1/webhooks', admin)).status).toBe(200);
    expect((await h.post('/v1/webhooks', { url: 'https://example.com/' }, admin)).status).toBe(403);
    const bad = await h.post('/v1/webhooks', { url: 'https://example.com/', events: ['nope'] });
    expect([bad.status, bad.body.error.code]).toEqual([400, ErrorCode.INVALID_MESSAGE]);
    const ftp = await h.post('/v1/webhooks', { url: 'ftp://example.com/' });
    expect([ftp.status, ftp.body.error.code]).toEqual([400, ErrorCode.INVALID_VALUE]);
    // Any event kind the protocol defines may be asked for.
    expect(
      (await h.post('/v1/webhooks', { url: 'https://example.com/', events: ['progress', 'log'] })).status,
    ).toBe(201);
  });
});

describe('targets', () => {
  it('are refused in production when private, loopback, link-local or http:, unless allowed', async () => {
    const h = await hub({ production: true });
    for (const url of [
      'http://127.0.0.1:9/hook',
      'https://127.0.0.1/hook',
      'https://localhost/hook',
      'https://[::1]/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://10.1.2.3/',
      'https://[::ffff:192.168.0.1]/',
      'http://example.com/',
    ]) {
      const res = await h.post('/v1/webhooks', { url });
      expect([url, res.status, res.body.error?.code]).toEqual([url, 400, ErrorCode.WEBHOOK_TARGET_REFUSED]);
    }
    expect((await h.post('/v1/webhooks', { url: 'https://93.184.215.14/hook' })).status).toBe(201);
    const allowed = await hub({ production: true, webhooks: { allowPrivate: true, allowHttp: true } });
    const r = await receiver();
    await createWebhook(allowed, { url: r.url });
    await runJob(allowed, ['completed']);
    await waitFor(() => r.requests.length === 1, 'the delivery');
  });

  it('classify addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'fd00:ec2::254',
      '::ffff:127.0.0.1',
      '224.0.0.1',
    ]) {
      expect([a, isPrivateAddress(a)]).toEqual([a, true]);
    }
    for (const a of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect([a, isPrivateAddress(a)]).toEqual([a, false]);
    }
  });
});
