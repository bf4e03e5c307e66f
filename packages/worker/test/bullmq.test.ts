/**
 * The BullMQ bridge against the real Redis (`REDIS_URL`) and the real
 * `bullmq` package: a unique queue per test, obliterated afterwards.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import { JOB_ID } from '@headway/protocol/codes';
import { REDIS_URL, requireRedis, startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { type Job, Queue, Worker } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ATTEMPT_FAILED,
  type BullMQBridge,
  bridgeBullMQ,
  bullmqJobId,
  JOB_FAILED,
  progressFromBullMQ,
} from '../src/bullmq.js';
import { HeadwayWorker, WorkerErrorCode } from '../src/index.js';

const redisUrl = new URL(REDIS_URL);
const connection = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) };
const redis = await requireRedis();

describe('progressFromBullMQ', () => {
  it('maps numbers and objects', () => {
    expect(progressFromBullMQ(42)).toEqual({ report: { percent: 42 } });
    expect(progressFromBullMQ(140)).toEqual({ report: { percent: 100 } });
    expect(progressFromBullMQ({ current: 3, total: 10, unit: 'videos', message: 'three' })).toEqual({
      report: { current: 3, total: 10, unit: 'videos' },
      message: 'three',
    });
    expect(progressFromBullMQ({ stage: 'encode', percent: 5 })).toEqual({
      report: { percent: 5 },
      stage: 'encode',
    });
    expect(progressFromBullMQ({ foo: 1 })).toBeNull();
    expect(progressFromBullMQ('half')).toBeNull();
    expect(progressFromBullMQ(Number.NaN)).toBeNull();
  });

  it('builds ids Headway accepts', () => {
    expect(bullmqJobId('media', '42')).toBe('bullmq:media:42');
    expect(bullmqJobId('media', '42', 2)).toBe('bullmq:media:42:attempt-2');
    expect(bullmqJobId('my queue', 'a/b')).toBe('bullmq:my_queue:a_b');
    const long = bullmqJobId('q', 'x'.repeat(300), 3);
    expect(long.length).toBeLessThanOrEqual(128);
    expect(long).toMatch(JOB_ID);
  });
});

describe.skipIf(redis.skip)(redis.title('bridgeBullMQ'), () => {
  let hub: TestHub;
  let queue: Queue;
  let worker: Worker | null;
  let bridge: BullMQBridge | null;
  let headway: HeadwayWorker;
  let counter = 0;

  beforeEach(async () => {
    hub = await startHub();
    queue = new Queue(`hw-bridge-${process.pid}-${Date.now().toString(36)}-${++counter}`, { connection });
    worker = null;
    bridge = null;
    headway = new HeadwayWorker({ url: hub.url, apiKey: hub.apiKey, onError: () => {} });
  });

  afterEach(async () => {
    await worker?.close();
    await bridge?.close();
    await headway.close();
    await queue.obliterate({ force: true });
    await queue.close();
    await hub.close();
  });

  async function state(id: string): Promise<JobState> {
    return (await hub.get<JobState>(`/v1/jobs/${id}`)).body;
  }
  async function kinds(id: string): Promise<string[]> {
    return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0`)).body.events.map(
      (e) => e.kind,
    );
  }
  async function until(id: string, check: (s: JobState) => boolean): Promise<JobState> {
    return waitFor(
      async () => {
        const res = await hub.get<JobState>(`/v1/jobs/${id}`);
        return res.status === 200 && check(res.body) ? res.body : null;
      },
      `job ${id}`,
      10_000,
    );
  }

  function start(extra: Partial<Parameters<typeof bridgeBullMQ>[0]> = {}) {
    return bridgeBullMQ({
      queue,
      hub: headway,
      owner: (job) => (job.data as { user: string }).user,
      name: (job) => `Process ${(job.data as { file?: string }).file ?? job.name}`,
      ...extra,
    });
  }

  it('mirrors a job: queued, running, progress numbers and objects, completed with the result', async () => {
    bridge = await start();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const added = await queue.add('transcode', { user: 'alice', file: 'a.mp4' });
    const id = bullmqJobId(queue.name, added.id!);
    const queued = await until(id, (s) => s.status === 'queued');
    expect(queued).toMatchObject({ owner: 'alice', name: 'Process a.mp4' });
    expect(queued.metadata.bullmq).toMatchObject({ queue: queue.name, id: added.id, attempt: 1 });

    worker = new Worker(
      queue.name,
      async (job: Job) => {
        await job.updateProgress(25);
        await job.updateProgress({ current: 3, total: 4, unit: 'chunks', message: 'three of four' });
        await gate;
        return { url: 'https://cdn.test/a.mp4' };
      },
      { connection },
    );
    const running = await until(id, (s) => s.progress.current === 3);
    expect(running).toMatchObject({ status: 'running', message: 'three of four' });
    expect(running.progress).toMatchObject({ percent: 75, total: 4, unit: 'chunks' });
    release();
    const done = await until(id, (s) => s.status === 'completed');
    expect(done.result).toEqual({ url: 'https://cdn.test/a.mp4' });
    const seen = await kinds(id);
    expect(seen[0]).toBe('created');
    expect(seen).toContain('progress');
    expect(seen.at(-1)).toBe('completed');
  });

  it('mirrors a retried failure: each attempt its own job, retryable while attempts remain', async () => {
    bridge = await start();
    worker = new Worker(
      queue.name,
      async (): Promise<void> => {
        throw new Error('decoder crashed');
      },
      { connection },
    );
    const added = await queue.add(
      'transcode',
      { user: 'bob' },
      { attempts: 2, backoff: { type: 'fixed', delay: 50 } },
    );
    const first = bullmqJobId(queue.name, added.id!);
    const second = bullmqJobId(queue.name, added.id!, 2);
    const a1 = await until(first, (s) => s.status === 'failed');
    expect(a1.error).toMatchObject({ code: ATTEMPT_FAILED, message: 'decoder crashed', retryable: true });
    const a2 = await until(second, (s) => s.status === 'failed');
    expect(a2.error).toMatchObject({ code: JOB_FAILED, message: 'decoder crashed', retryable: false });
    expect(a2.metadata).toMatchObject({ retryOf: first, attempt: 2 });
    expect(a2.metadata.bullmq).toMatchObject({ attempt: 2, attempts: 2, attemptsMade: 2 });
    expect(a2.owner).toBe('bob');
  });

  it('a Headway cancel aborts the signal of a processor wrapped withHeadway, without a retry', async () => {
    bridge = await start();
    const b = bridge;
    let reason: unknown = null;
    worker = new Worker(
      queue.name,
      b.withHeadway(async (job, _token, signal) => {
        await job.updateProgress(10);
        await new Promise<void>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reason = signal.reason;
            reject(signal.reason);
          });
        });
      }),
      { connection },
    );
    const added = await queue.add('transcode', { user: 'carol' }, { attempts: 3 });
    const id = bullmqJobId(queue.name, added.id!);
    await until(id, (s) => s.progress.percent === 10);
    const token = await hub.token('carol');
    expect((await hub.post(`/v1/jobs/${id}/cancel`, {}, token)).status).toBe(200);

    await waitFor(() => reason !== null, 'processor abort', 2000);
    expect(reason).toMatchObject({ code: WorkerErrorCode.CANCELLED });
    await until(id, (s) => s.status === 'cancelled');
    // BullMQ failed it for good: no second attempt.
    await waitFor(async () => (await queue.getJob(added.id!))?.finishedOn !== undefined, 'bullmq failure');
    const job = await queue.getJob(added.id!);
    expect(job?.attemptsMade).toBe(1);
    expect(await queue.getJobState(added.id!)).toBe('failed');
    expect((await hub.get(`/v1/jobs/${bullmqJobId(queue.name, added.id!, 2)}`)).status).toBe(404);
    expect((await kinds(id)).filter((k) => k === 'cancelled')).toHaveLength(1);
  });

  it('with the BullMQ worker given, a Headway cancel aborts the signal BullMQ passes', async () => {
    let reason: unknown = null;
    worker = new Worker(
      queue.name,
      async (job: Job, _token?: string, signal?: AbortSignal) => {
        await job.updateProgress(5);
        await new Promise<void>((_resolve, reject) => {
          signal!.addEventListener('abort', () => {
            reason = signal!.reason;
            reject(new Error('aborted'));
          });
        });
      },
      { connection },
    );
    bridge = await start({ worker });
    const added = await queue.add('transcode', { user: 'dave' });
    const id = bullmqJobId(queue.name, added.id!);
    await until(id, (s) => s.progress.percent === 5);
    const token = await hub.token('dave');
    await hub.post(`/v1/jobs/${id}/cancel`, {}, token);
    await waitFor(() => reason !== null, 'processor abort', 2000);
    expect(reason).toBe('cancelled in Headway');
    expect((await until(id, (s) => s.status === 'cancelled')).status).toBe('cancelled');
  });

  it('a job removed from the queue is cancelled in Headway; a failing owner skips the job', async () => {
    const errors: unknown[] = [];
    bridge = await start({
      owner: (job) => {
        const user = (job.data as { user?: string }).user;
        if (!user) throw new Error('no user');
        return user;
      },
      onError: (err) => errors.push(err),
    });
    const kept = await queue.add('later', { user: 'erin' }, { delay: 60_000 });
    const orphan = await queue.add('later', {}, { delay: 60_000 });
    const id = bullmqJobId(queue.name, kept.id!);
    await until(id, (s) => s.status === 'queued');
    await kept.remove();
    await until(id, (s) => s.status === 'cancelled');
    await waitFor(() => errors.length === 1, 'owner error');
    expect((await hub.get(`/v1/jobs/${bullmqJobId(queue.name, orphan.id!)}`)).status).toBe(404);
    expect(await state(id)).toMatchObject({ owner: 'erin' });
  });
});
