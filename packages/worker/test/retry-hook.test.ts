/**
 * `onRetry` hears of every retry, of reported events and of calls, with the
 * request, the failed attempt, the wait and the error, before the wait begins.
 */
import type { JobState } from '@headway/protocol';
import { runningJob } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeadwayWorker, type RetryInfo, WorkerErrorCode } from '../src/index.js';
import { FakeHub } from './helpers.js';

let fake: FakeHub;
let worker: HeadwayWorker;
let retries: RetryInfo[];

function state(id: string): JobState {
  const now = new Date().toISOString();
  return runningJob(id, 1, { progress: { percent: 0 }, createdAt: now, updatedAt: now, startedAt: now });
}

beforeEach(() => {
  vi.useFakeTimers();
  // Every backoff delay is half its cap (50 ms), so the steps below see one retry each.
  vi.spyOn(Math, 'random').mockReturnValue(0.5);
  fake = new FakeHub();
  retries = [];
  worker = new HeadwayWorker({
    url: 'http://hub.test',
    apiKey: 'test-key',
    control: 'none',
    fetch: fake.fetch,
    retry: { initialDelayMs: 100, maxDelayMs: 100, maxAttempts: 3 },
    onError: () => {},
    onRetry: (info) => retries.push(info),
  });
});

afterEach(async () => {
  fake.release();
  const closing = worker.close();
  await vi.runOnlyPendingTimersAsync();
  await closing;
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('onRetry', () => {
  it('is told of each retry of reported events, with the hub error, before the wait', async () => {
    const a = worker.job('a');
    a.applyState(state('a'));
    const unavailable = { error: { code: 'HW_ERR_STORE_UNAVAILABLE', message: 'try later' } };
    fake.next.push({ status: 503, body: unavailable }, 'network-error');
    a.log('one');
    await vi.advanceTimersByTimeAsync(20);
    expect(retries).toHaveLength(1);
    expect(fake.batches()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fake.batches()).toHaveLength(3);
    expect(retries.map((r) => [r.request, r.attempt, r.error?.code])).toEqual([
      ['POST /v1/events', 1, 'HW_ERR_STORE_UNAVAILABLE'],
      ['POST /v1/events', 2, WorkerErrorCode.UNREACHABLE],
    ]);
    for (const r of retries) expect(r.delayMs).toBeLessThanOrEqual(100);
  });

  it('is told of each retry of a call, and not of the last failed attempt', async () => {
    fake.next.push('network-error', 'network-error', 'network-error');
    const creating = worker.createJob({ id: 'b', owner: 'alice' }).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await creating).toMatchObject({ code: WorkerErrorCode.UNREACHABLE });
    expect(retries.map((r) => [r.request, r.attempt, r.error?.code])).toEqual([
      ['POST /v1/jobs', 1, WorkerErrorCode.UNREACHABLE],
      ['POST /v1/jobs', 2, WorkerErrorCode.UNREACHABLE],
    ]);
  });

  it('keeps retrying when the listener throws', async () => {
    const throwing = new HeadwayWorker({
      url: 'http://hub.test',
      apiKey: 'test-key',
      control: 'none',
      fetch: fake.fetch,
      retry: { initialDelayMs: 10, maxDelayMs: 10 },
      onError: () => {},
      onRetry: () => {
        throw new Error('listener failed');
      },
    });
    const a = throwing.job('a');
    a.applyState(state('a'));
    fake.next.push('network-error');
    a.log('one');
    await vi.advanceTimersByTimeAsync(100);
    expect(fake.batches()).toHaveLength(2);
    const closing = throwing.close();
    await vi.runOnlyPendingTimersAsync();
    await closing;
  });
});
