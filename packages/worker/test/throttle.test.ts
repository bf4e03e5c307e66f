/**
 * Throttling, batching and the bounded queue, with fake timers and a recording
 * fake `fetch` standing in for the hub (the network is tested in the other suites).
 */
import type { JobState } from '@headway/protocol';
import { runningJob } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeadwayWorker, type HeadwayWorkerError, type JobHandle, WorkerErrorCode } from '../src/index.js';
import { FakeHub } from './helpers.js';

let fake: FakeHub;
let worker: HeadwayWorker;
let errors: HeadwayWorkerError[];

function state(id: string): JobState {
  const now = new Date().toISOString();
  return runningJob(id, 1, { progress: { percent: 0 }, createdAt: now, updatedAt: now, startedAt: now });
}

function open(options: ConstructorParameters<typeof HeadwayWorker>[0] = {}): HeadwayWorker {
  worker = new HeadwayWorker({
    url: 'http://hub.test',
    apiKey: 'test-key',
    control: 'none',
    fetch: fake.fetch,
    onError: (e) => errors.push(e),
    ...options,
  });
  return worker;
}

/** A handle without a network round trip: the job "exists" in the fake hub. */
function job(id: string): JobHandle {
  const handle = worker.job(id);
  handle.applyState(state(id));
  return handle;
}

const progressOf = (id: string) =>
  fake
    .events()
    .filter((e) => e.job === id && e.kind === 'progress')
    .map((e) => e.percent ?? e.current);

beforeEach(() => {
  vi.useFakeTimers();
  fake = new FakeHub();
  errors = [];
});

afterEach(async () => {
  fake.release();
  const closing = worker?.close();
  await vi.runOnlyPendingTimersAsync();
  await closing;
  vi.useRealTimers();
});

describe('progress throttle', () => {
  it('sends at most one progress per interval per job, and always the newest in the end', async () => {
    open();
    const a = job('a');
    // 100 reports over one second.
    for (let i = 1; i <= 100; i++) {
      a.progress({ percent: i });
      await vi.advanceTimersByTimeAsync(10);
    }
    await vi.advanceTimersByTimeAsync(1000);
    const sent = progressOf('a');
    // 1 s at 250 ms per report: the first at once, then about four more; the last is 100.
    expect(sent.length).toBeGreaterThanOrEqual(4);
    expect(sent.length).toBeLessThanOrEqual(6);
    expect(sent.at(-1)).toBe(100);
    expect(sent).toEqual([...sent].sort((x, y) => Number(x) - Number(y)));
  });

  it('skips changes below minPercentDelta, but not a new message', async () => {
    open();
    const a = job('a');
    a.progress({ percent: 10 });
    await vi.advanceTimersByTimeAsync(300);
    a.progress({ percent: 10.05 });
    await vi.advanceTimersByTimeAsync(300);
    expect(progressOf('a')).toEqual([10]);
    a.progress({ percent: 10.05 }, 'now encoding');
    await vi.advanceTimersByTimeAsync(300);
    expect(progressOf('a')).toEqual([10, 10.05]);
    a.progress({ percent: 10.2 });
    await vi.advanceTimersByTimeAsync(300);
    expect(progressOf('a')).toEqual([10, 10.05, 10.2]);
  });

  it('counts of unknown extent report on any change', async () => {
    open();
    const a = job('a');
    a.progress({ current: 1, unit: 'files' });
    await vi.advanceTimersByTimeAsync(300);
    a.progress({ current: 2, unit: 'files' });
    await vi.advanceTimersByTimeAsync(300);
    a.progress({ current: 2, unit: 'files' });
    await vi.advanceTimersByTimeAsync(300);
    expect(progressOf('a')).toEqual([1, 2]);
  });

  it('sends stage, log and the outcome at once, right after the newest progress', async () => {
    open();
    const a = job('a');
    a.progress({ percent: 10 });
    await vi.advanceTimersByTimeAsync(50);
    a.progress({ percent: 40 }); // throttled: within 250 ms of the first
    a.progress({ percent: 40.01 }); // below the delta, but the newest
    a.stage('encode');
    a.log('starting to encode');
    const done = a.complete({ ok: true });
    await vi.advanceTimersByTimeAsync(20); // the batch delay, well under the throttle interval
    await done;
    const kinds = fake.events().map((e) => `${e.kind}${e.kind === 'progress' ? `:${e.percent}` : ''}`);
    expect(kinds).toEqual(['progress:10', 'progress:40.01', 'stage', 'log', 'completed']);
  });

  it('never loses the last progress before a failure, even a tiny change', async () => {
    open();
    const a = job('a');
    a.progress({ percent: 50 });
    await vi.advanceTimersByTimeAsync(300);
    a.progress({ percent: 50.04 });
    const failed = a.fail(new Error('disk full'));
    await vi.advanceTimersByTimeAsync(20);
    await failed;
    expect(fake.events().map((e) => e.kind)).toEqual(['progress', 'progress', 'failed']);
    expect(progressOf('a')).toEqual([50, 50.04]);
  });

  it('flush() sends throttled progress at once', async () => {
    open();
    const a = job('a');
    a.progress({ percent: 1 });
    await vi.advanceTimersByTimeAsync(20);
    a.progress({ percent: 2 }); // throttled until 250 ms
    const flushed = worker.flush();
    await vi.advanceTimersByTimeAsync(20);
    await flushed;
    expect(progressOf('a')).toEqual([1, 2]);
  });

  it('collapses queued progress of a job into the newest', async () => {
    open({ progressIntervalMs: 0 });
    const a = job('a');
    for (let p = 1; p <= 5; p++) a.progress({ percent: p }); // all within the batch delay
    await vi.advanceTimersByTimeAsync(20);
    expect(progressOf('a')).toEqual([5]);
  });

  it('takes its interval and delta from the options', async () => {
    open({ progressIntervalMs: 1000, minPercentDelta: 5 });
    const a = job('a');
    for (let p = 0; p <= 30; p++) {
      a.progress({ percent: p });
      await vi.advanceTimersByTimeAsync(100);
    }
    await vi.advanceTimersByTimeAsync(2000);
    // Each report 1 s after the last, with the newest value then; 30 is within 5 of 29.
    expect(progressOf('a')).toEqual([0, 9, 19, 29]);
    const done = a.complete();
    await vi.advanceTimersByTimeAsync(20);
    await done;
    expect(progressOf('a')).toEqual([0, 9, 19, 29, 30]);
  });
});

describe('batching', () => {
  it('sends the events of many jobs reported together in one request', async () => {
    open();
    const jobs = ['a', 'b', 'c'].map(job);
    for (const j of jobs) j.progress({ percent: 5 });
    jobs[1]!.log('hello');
    await vi.advanceTimersByTimeAsync(20);
    const batches = fake.batches();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((e) => `${e.job}:${e.kind}`)).toEqual([
      'a:progress',
      'b:progress',
      'c:progress',
      'b:log',
    ]);
    // Every event carries its own idempotency key.
    const keys = batches[0]!.map((e) => e.key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('sends one request at a time; what is queued meanwhile goes in the next', async () => {
    open();
    const a = job('a');
    const b = job('b');
    fake.next.push('hang');
    a.log('one');
    await vi.advanceTimersByTimeAsync(20);
    expect(fake.batches()).toHaveLength(1);
    b.log('two');
    a.log('three');
    b.log('four');
    await vi.advanceTimersByTimeAsync(100);
    expect(fake.batches()).toHaveLength(1); // still waiting for the first answer
    fake.release(); // the first request fails; it is retried with what was queued behind it
    await vi.advanceTimersByTimeAsync(500);
    const batches = fake.batches();
    expect(batches).toHaveLength(2);
    expect(batches[1]!.map((e) => e.message)).toEqual(['one', 'two', 'three', 'four']);
    expect(batches[1]![0]!.key).toBe(batches[0]![0]!.key);
  });

  it('splits requests at maxBatchEvents', async () => {
    open({ maxBatchEvents: 2 });
    const a = job('a');
    for (let i = 0; i < 5; i++) a.log(`line ${i}`);
    await vi.advanceTimersByTimeAsync(50);
    expect(fake.batches().map((b) => b.length)).toEqual([2, 2, 1]);
  });

  it('applies control from the answers: a cancel aborts the signal and is acknowledged', async () => {
    open();
    const a = job('a');
    fake.control.set('a', { cancelRequested: true, paused: false });
    a.log('working');
    await vi.advanceTimersByTimeAsync(20);
    expect(a.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(20);
    expect(fake.events().map((e) => e.kind)).toEqual(['log', 'cancelled']);
  });
});

describe('bounded queue', () => {
  it('collapses queued progress, drops old logs when full, and keeps outcomes', async () => {
    open({ maxQueuedEvents: 5 });
    const jobs = ['a', 'b', 'c'].map(job);
    // The hub is down: every request fails and is retried with backoff.
    for (let i = 0; i < 50; i++) fake.next.push('network-error');
    for (let i = 0; i < 20; i++) {
      for (const j of jobs) j.progress({ percent: i });
      jobs[0]!.log(`line ${i}`);
      await vi.advanceTimersByTimeAsync(300);
    }
    const outcomes = jobs.map((j) => j.complete());
    expect(worker.stats().queued).toBeLessThanOrEqual(5 + 3);
    expect(worker.stats().dropped).toBeGreaterThan(0);
    expect(errors.some((e) => e.code === WorkerErrorCode.DROPPED)).toBe(true);
    fake.next.length = 0; // the hub is back
    await vi.advanceTimersByTimeAsync(30_000);
    await Promise.all(outcomes);
    const delivered = fake.batches().at(-1)!;
    // Each job's newest progress survived, and every outcome.
    for (const id of ['a', 'b', 'c']) {
      const mine = delivered.filter((e) => e.job === id);
      expect(mine.at(-1)?.kind).toBe('completed');
      expect(mine.filter((e) => e.kind === 'progress').at(-1)?.percent).toBe(19);
    }
  });
});

describe('retries', () => {
  it('honours Retry-After on 503 and keeps the keys', async () => {
    open();
    const a = job('a');
    fake.next.push({
      status: 503,
      headers: { 'retry-after': '3' },
      body: { error: { code: 'HW_ERR_STORE_UNAVAILABLE', message: 'retry' } },
    });
    a.log('x');
    await vi.advanceTimersByTimeAsync(20);
    expect(fake.batches()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2900);
    expect(fake.batches()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(fake.batches()).toHaveLength(2);
    expect(fake.batches()[1]![0]!.key).toBe(fake.batches()[0]![0]!.key);
  });

  it('backs off exponentially (capped) on network errors and 429', async () => {
    open({ retry: { initialDelayMs: 100, maxDelayMs: 400 } });
    const a = job('a');
    fake.next.push('network-error', 'network-error', 'network-error', 'network-error', {
      status: 429,
      body: { error: { code: 'HW_ERR_RATE_LIMITED', message: 'slow down' } },
    });
    a.log('x');
    // Each delay is at most 100, 200, 400, 400, 400 ms: all six attempts within 1.6 s.
    await vi.advanceTimersByTimeAsync(1600);
    expect(fake.batches()).toHaveLength(6);
    expect(new Set(fake.batches().map((b) => b[0]!.key)).size).toBe(1);
  });

  it('retries only the jobs the hub could not store', async () => {
    open();
    const a = job('a');
    const b = job('b');
    fake.next.push({
      status: 200,
      body: {
        results: [
          { job: 'a', seq: 2, control: { cancelRequested: false, paused: false } },
          { job: 'b', error: { code: 'HW_ERR_STORE_UNAVAILABLE', message: 'retry' } },
        ],
      },
    });
    a.log('for a');
    b.log('for b');
    await vi.advanceTimersByTimeAsync(2000);
    const batches = fake.batches();
    expect(batches).toHaveLength(2);
    expect(batches[1]!.map((e) => e.job)).toEqual(['b']);
  });

  it('close() gives up after closeTimeoutMs and reports what was dropped', async () => {
    open({ closeTimeoutMs: 1000 });
    const a = job('a');
    for (let i = 0; i < 100; i++) fake.next.push('network-error');
    a.log('lost');
    const outcome = a.complete().catch((e: HeadwayWorkerError) => e.code);
    const closing = worker.close();
    await vi.advanceTimersByTimeAsync(1100);
    await closing;
    expect(await outcome).toBe(WorkerErrorCode.CLOSED);
    expect(errors.some((e) => e.code === WorkerErrorCode.DROPPED)).toBe(true);
  });
});
