/**
 * Webhooks across real `headway start` processes: a hub killed with SIGKILL
 * while its receiver is down delivers every outcome after a restart, and two
 * hubs sharing PostgreSQL deliver each outcome once between them.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dropSchema,
  type HubProcess,
  POSTGRES_URL,
  requireFreshBuild,
  requirePostgres,
  spawnHubProcess,
  TEST_API_KEY,
  uniqueName,
  waitFor,
} from '@headway/test-helpers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Receiver, seqsByJob, startReceiver } from './webhook-receiver.js';

const postgres = await requirePostgres();

/** Fast retries, a short lease (so a killed process's claim is taken over soon) and no circuit in the way. */
const FAST_FLAGS = [
  '--webhook-poll-ms',
  '20',
  '--webhook-backoff-initial-ms',
  '50',
  '--webhook-backoff-max-ms',
  '200',
  '--webhook-timeout-ms',
  '1000',
  '--webhook-lease-ms',
  '2000',
  '--webhook-circuit-failures',
  '1000',
];

const children: ChildProcess[] = [];
const receivers: Receiver[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  requireFreshBuild();
});

afterEach(async () => {
  await Promise.all(children.splice(0).map(kill));
  for (const r of receivers.splice(0)) await r.close();
  for (const c of cleanups.splice(0)) await c();
}, 30_000);

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

function spawnHub(dataDir: string, extra: string[] = []): Promise<HubProcess> {
  return spawnHubProcess(['--data-dir', dataDir, ...FAST_FLAGS, ...extra], (p) => children.push(p.child));
}

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_API_KEY}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: checked by the assertions.
  const json: any = text === '' ? undefined : JSON.parse(text);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return json;
}

async function runJob(base: string, id: string, kinds: string[]): Promise<void> {
  await api(base, 'POST', '/v1/jobs', { id, owner: 'alice' });
  for (const kind of kinds) {
    await api(base, 'POST', `/v1/jobs/${id}/events`, {
      events: [kind === 'progress' ? { kind, percent: 50 } : { kind }],
    });
  }
}

async function allSettled(base: string, webhook: string, count: number): Promise<boolean> {
  const { deliveries } = await api(base, 'GET', `/v1/webhooks/${webhook}/deliveries?limit=500`);
  return deliveries.length === count && deliveries.every((d: { status: string }) => d.status === 'succeeded');
}

describe('guarantee 9: a hub killed while its receiver is down', () => {
  it('delivers every outcome after a restart, with the same delivery ids, in order', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'headway-webhooks-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const failing = await startReceiver(() => 503);
    receivers.push(failing);
    let hub = await spawnHub(dataDir);
    const { id: webhook } = await api(hub.url, 'POST', '/v1/webhooks', {
      url: failing.url,
      events: ['progress', 'completed'],
    });
    const jobs = ['k-1', 'k-2', 'k-3'].map((j) => `${j}-${process.pid}`);
    for (const job of jobs) await runJob(hub.url, job, ['progress', 'progress', 'completed']);
    await waitFor(() => failing.requests.length >= 6, 'failed attempts', 10_000);

    // The receiver goes down, then the hub dies without any chance to clean up.
    await failing.close();
    receivers.splice(receivers.indexOf(failing), 1);
    await kill(hub.child);
    hub = await spawnHub(dataDir);
    const up = await startReceiver(() => 200, failing.port);
    receivers.push(up);

    await waitFor(() => allSettled(hub.url, webhook, 9), 'every delivery settled', 20_000);
    for (const job of jobs) expect(seqsByJob(up.requests).get(job)).toEqual([2, 3, 4]);
    expect(up.requests).toHaveLength(9);
    // One delivery id per event, on every attempt before and after the restart.
    const ids = new Map<string, Set<string>>();
    for (const r of [...failing.requests, ...up.requests]) {
      const key = `${r.json.event.job}:${r.json.event.seq}`;
      ids.set(key, (ids.get(key) ?? new Set()).add(r.delivery));
    }
    expect(ids.size).toBe(9);
    for (const set of ids.values()) expect(set.size).toBe(1);
  }, 60_000);
});

describe.skipIf(postgres.skip)(postgres.title('two hub processes on PostgreSQL'), () => {
  async function pgCluster() {
    const schema = uniqueName('hw_wh');
    const dataDir = mkdtempSync(join(tmpdir(), 'headway-webhooks-'));
    cleanups.push(async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await dropSchema(schema);
    });
    const flags = ['--postgres', POSTGRES_URL, '--postgres-schema', schema];
    return (extra: string[] = []) => spawnHub(dataDir, [...flags, ...extra]);
  }

  it('take over a delivery from a process killed mid-attempt once its lease ends', async () => {
    const spawnOne = await pgCluster();
    // Hub A's attempt outlives the moment it is killed (a 5 s timeout, a 6 s lease).
    const a = await spawnOne(['--webhook-timeout-ms', '5000', '--webhook-lease-ms', '6000']);
    // The first attempt never gets an answer; later ones succeed.
    const r = await startReceiver((_req, i) => (i === 0 ? 'hang' : 200));
    receivers.push(r);
    const { id: webhook } = await api(a.url, 'POST', '/v1/webhooks', { url: r.url });
    const job = `lease-${process.pid}`;
    await runJob(a.url, job, ['completed']);
    await waitFor(() => r.requests.length === 1, 'the attempt in flight on hub A', 10_000);
    await kill(a.child);
    // Only hub B is left to make the second attempt, once A's lease has ended.
    const b = await spawnOne();
    await waitFor(() => allSettled(b.url, webhook, 1), 'hub B delivering it', 20_000);
    expect(r.requests.map((q) => q.json.event.job)).toEqual([job, job]);
    expect(new Set(r.requests.map((q) => q.delivery)).size).toBe(1);
  }, 60_000);

  it('deliver each outcome exactly once between them', async () => {
    const spawnOne = await pgCluster();
    const a = await spawnOne();
    const b = await spawnOne();
    const r = await startReceiver(() => 200);
    receivers.push(r);
    const { id: webhook } = await api(a.url, 'POST', '/v1/webhooks', { url: r.url });
    const jobs = Array.from({ length: 20 }, (_, i) => `pg-${process.pid}-${i}`);
    await Promise.all(jobs.map((job, i) => runJob(i % 2 === 0 ? a.url : b.url, job, ['completed'])));
    // Once every delivery is settled as succeeded, none can be attempted again.
    await waitFor(() => allSettled(b.url, webhook, 20), 'every delivery settled', 20_000);
    expect(r.requests.map((q) => q.json.event.job).sort()).toEqual([...jobs].sort());
    expect(new Set(r.requests.map((q) => q.delivery)).size).toBe(20);
    // Between them the two processes made exactly one attempt per delivery.
    const attempts = async (base: string) => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return Number(/^headway_webhook_attempts_total\{result="success"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    expect((await attempts(a.url)) + (await attempts(b.url))).toBe(20);
  }, 60_000);
});
