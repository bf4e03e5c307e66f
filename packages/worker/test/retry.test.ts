/**
 * Idempotent retries against a real hub behind a proxy that drops the
 * connection after the hub answered: the hub committed, the worker saw a
 * network error and sent the same events again. Each is applied once.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import { startHub, type TestHub } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HeadwayWorker } from '../src/index.js';
import { type DropProxy, startDropProxy } from './helpers.js';

let hub: TestHub;
let proxy: DropProxy;
let worker: HeadwayWorker | null = null;

beforeEach(async () => {
  hub = await startHub();
  proxy = await startDropProxy(hub.url);
});

afterEach(async () => {
  await worker?.close();
  worker = null;
  await proxy.close();
  await hub.close();
});

function open(): HeadwayWorker {
  worker = new HeadwayWorker({
    url: proxy.url,
    apiKey: hub.apiKey,
    control: 'none',
    retry: { initialDelayMs: 20, maxDelayMs: 100 },
    onError: () => {},
  });
  return worker;
}

async function events(id: string): Promise<JobEvent[]> {
  return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0`)).body.events;
}

describe('idempotent retry', () => {
  it('applies a batch once when its answer was lost after the commit', async () => {
    const w = open();
    const a = await w.createJob({ owner: 'alice', stages: [{ name: 'one' }, { name: 'two' }] });
    const b = await w.createJob({ owner: 'alice' });
    proxy.dropAfterAnswer('/v1/events', 2);
    a.stage('one');
    a.progress({ percent: 50 });
    a.log('half of one');
    b.progress({ current: 3, total: 10, unit: 'files' });
    a.stage('two');
    await Promise.all([a.complete({ ok: 1 }), b.fail('broken', { retryable: true })]);

    // Three attempts reached the hub; the first two lost their answers.
    expect(proxy.seen.filter((r) => r === 'POST /v1/events').length).toBeGreaterThanOrEqual(3);
    expect((await events(a.id)).map((e) => e.kind)).toEqual([
      'created',
      'stage',
      'progress',
      'log',
      'stage',
      'completed',
    ]);
    expect((await events(b.id)).map((e) => e.kind)).toEqual(['created', 'progress', 'failed']);
    const final = (await hub.get<JobState>(`/v1/jobs/${a.id}`)).body;
    expect(final.status).toBe('completed');
  });

  it('createJob adopts the job when the answer to its first attempt was lost', async () => {
    const w = open();
    proxy.dropAfterAnswer('/v1/jobs', 1);
    const job = await w.createJob({ owner: 'bob', name: 'created once' });
    expect(proxy.seen.filter((r) => r === 'POST /v1/jobs')).toHaveLength(2);
    expect(job.state?.name).toBe('created once');
    expect((await events(job.id)).map((e) => e.kind)).toEqual(['created']);
    await job.complete();
  });

  it('adopts a job with a chosen id only when it is the one asked for', async () => {
    const w = open();
    const id = `retry-own-${process.pid}-${Date.now()}`;
    proxy.dropAfterAnswer('/v1/jobs', 1);
    const job = await w.createJob({ id, owner: 'carol', name: 'mine' });
    expect(job.id).toBe(id);
    await job.complete();

    // Another owner's job under the id is not adopted, even after a lost answer.
    const taken = `retry-taken-${process.pid}-${Date.now()}`;
    await hub.post('/v1/jobs', { id: taken, owner: 'mallory' });
    proxy.dropAfterAnswer('/v1/jobs', 1);
    await expect(w.createJob({ id: taken, owner: 'carol' })).rejects.toMatchObject({
      code: 'HW_ERR_JOB_EXISTS',
    });
  });
});
