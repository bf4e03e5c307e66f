/**
 * Cancel and pause end to end: a browser token asks the hub, the hub tells the
 * worker, while the worker is not reporting. Each scenario runs over the
 * WebSocket control subscription and over the polling fallback.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ControlMode, HeadwayWorker, type JobHandle, WorkerErrorCode } from '../src/index.js';
import { type RecordedRequest, startTcpProxy, type TcpProxy } from './helpers.js';

/** The requirement: a request reaches an idle worker within a second. */
const CONTROL_DEADLINE_MS = 1000;

let hub: TestHub;
let worker: HeadwayWorker | null = null;
let proxy: TcpProxy | null = null;
let requests: RecordedRequest[] = [];

beforeEach(async () => {
  hub = await startHub();
  requests = [];
});

afterEach(async () => {
  await worker?.close();
  worker = null;
  await proxy?.close();
  proxy = null;
  await hub.close();
});

/** A worker whose requests are recorded, so a test can tell that it did not report. */
function open(control: ControlMode, url = hub.url): HeadwayWorker {
  const recording: typeof fetch = (input, init) => {
    requests.push({ method: init?.method ?? 'GET', path: new URL(String(input)).pathname, body: init?.body });
    return fetch(input, init);
  };
  worker = new HeadwayWorker({ url, apiKey: hub.apiKey, control, fetch: recording, onError: () => {} });
  return worker;
}

/** Create a job through the worker and make it `running` with one report. */
async function runningJob(w: HeadwayWorker, owner: string): Promise<JobHandle> {
  const job = await w.createJob({ owner, name: 'long task' });
  job.progress({ percent: 5 });
  await w.flush();
  return job;
}

const reports = () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/events').length;

async function kinds(id: string): Promise<string[]> {
  return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0`)).body.events.map(
    (e) => e.kind,
  );
}

async function state(id: string): Promise<JobState> {
  return (await hub.get<JobState>(`/v1/jobs/${id}`)).body;
}

/** Resolves with the ms from now until the signal aborts; rejects past the deadline. */
function abortedWithin(signal: AbortSignal, deadlineMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not aborted within ${deadlineMs} ms`)), deadlineMs);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve(performance.now() - started);
      },
      { once: true },
    );
  });
}

describe.each(['websocket', 'poll'] as const)('control over %s', (mode) => {
  it('a cancel from the browser aborts the signal of a silent worker within a second', async () => {
    const w = open(mode);
    const job = await runningJob(w, 'alice');
    if (mode === 'websocket') await waitFor(() => job.state?.seq === 2, 'subscription');
    const token = await hub.token('alice');
    const before = reports();

    const aborted = abortedWithin(job.signal, CONTROL_DEADLINE_MS);
    const res = await hub.post(`/v1/jobs/${job.id}/cancel`, { reason: 'changed my mind' }, token);
    expect(res.status).toBe(200);
    await aborted;

    expect(reports()).toBe(before); // learned without reporting
    expect(job.signal.reason).toMatchObject({ name: 'AbortError', code: WorkerErrorCode.CANCELLED });
    await expect(job.checkpoint()).rejects.toMatchObject({ code: WorkerErrorCode.CANCELLED });
    // The SDK acknowledged it.
    await waitFor(async () => (await state(job.id)).status === 'cancelled', 'cancelled');
    expect(await kinds(job.id)).toEqual(['created', 'progress', 'cancel_requested', 'cancelled']);
    // Later reports and outcomes are ignored.
    job.progress({ percent: 90 });
    await job.complete();
    await w.flush();
    expect((await state(job.id)).status).toBe('cancelled');
  });

  it('a pause holds checkpoint() until the resume, with both acknowledged', async () => {
    const w = open(mode);
    const job = await runningJob(w, 'bob');
    const token = await hub.token('bob');
    await hub.post(`/v1/jobs/${job.id}/pause`, {}, token);
    await waitFor(() => job.control.paused, 'pause to arrive', CONTROL_DEADLINE_MS);

    let passed = false;
    const waiting = job.checkpoint().then(() => {
      passed = true;
    });
    await waitFor(async () => (await state(job.id)).status === 'paused', 'paused');
    expect(passed).toBe(false);

    await hub.post(`/v1/jobs/${job.id}/resume`, {}, token);
    await waitFor(() => passed, 'checkpoint to resolve', CONTROL_DEADLINE_MS);
    await waiting;
    await waitFor(async () => (await state(job.id)).status === 'running', 'running');
    expect(await kinds(job.id)).toEqual([
      'created',
      'progress',
      'pause_requested',
      'paused',
      'resume_requested',
      'resumed',
    ]);
    await job.checkpoint(); // not paused: resolves at once
    await job.complete();
  });

  it('a cancel while paused rejects the waiting checkpoint()', async () => {
    const w = open(mode);
    const job = await runningJob(w, 'carol');
    const token = await hub.token('carol');
    await hub.post(`/v1/jobs/${job.id}/pause`, {}, token);
    await waitFor(() => job.control.paused, 'pause to arrive', CONTROL_DEADLINE_MS);
    // Its rejection is expected from here on: the cancel may reach the worker
    // before the cancel request's own answer reaches the test.
    const rejected = expect(job.checkpoint()).rejects.toMatchObject({
      name: 'AbortError',
      code: WorkerErrorCode.CANCELLED,
    });
    await waitFor(async () => (await state(job.id)).status === 'paused', 'paused');
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, token);
    await rejected;
    await waitFor(async () => (await state(job.id)).status === 'cancelled', 'cancelled');
  });

  it('a deleted job aborts the signal with HW_ERR_JOB_DELETED or HW_ERR_NOT_FOUND', async () => {
    const w = open(mode);
    const job = await runningJob(w, 'dave');
    const res = await hub.request('DELETE', `/v1/jobs/${job.id}`);
    expect(res.status).toBe(204);
    await abortedWithin(job.signal, CONTROL_DEADLINE_MS).catch(() => {
      // Already aborted before the listener: checked below.
    });
    await waitFor(() => job.signal.aborted, 'abort', CONTROL_DEADLINE_MS);
    expect(['HW_ERR_JOB_DELETED', 'HW_ERR_NOT_FOUND']).toContain(
      (job.signal.reason as { code: string }).code,
    );
    expect(job.ended).toBe(true);
  });
});

describe('control subscription', () => {
  it('a cancel of a job still queued (never reported) aborts its signal', async () => {
    const w = open('websocket');
    const job = await w.createJob({ owner: 'erin' });
    const token = await hub.token('erin');
    const aborted = abortedWithin(job.signal, CONTROL_DEADLINE_MS);
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, token);
    await aborted;
    expect(job.signal.reason).toMatchObject({ code: WorkerErrorCode.CANCELLED });
    // The hub cancelled it at once; the worker has nothing to acknowledge.
    expect(await kinds(job.id)).toEqual(['created', 'cancelled']);
  });

  it('reconnects after the connection is cut and still gets the next cancel', async () => {
    proxy = await startTcpProxy(hub.url);
    const w = open('websocket', proxy.url);
    const job = await runningJob(w, 'frank');
    await waitFor(() => job.state?.seq === 2, 'subscription');
    proxy.cut();
    // Progress reported meanwhile is what the resubscription resumes from.
    job.progress({ percent: 20 });
    await w.flush();
    await waitFor(() => job.state?.seq === 3, 'resubscription');
    const token = await hub.token('frank');
    const before = reports();
    const aborted = abortedWithin(job.signal, CONTROL_DEADLINE_MS);
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, token);
    await aborted;
    expect(reports()).toBe(before);
  });

  it('a worker that only reports learns of a cancel from the answer to its next report', async () => {
    const w = open('none');
    const job = await runningJob(w, 'gina');
    const token = await hub.token('gina');
    await hub.post(`/v1/jobs/${job.id}/cancel`, {}, token);
    expect(job.signal.aborted).toBe(false);
    job.log('still working');
    await w.flush();
    expect(job.signal.aborted).toBe(true);
    await waitFor(async () => (await state(job.id)).status === 'cancelled', 'cancelled');
  });

  it('onControl listeners see each change', async () => {
    const w = open('websocket');
    const job = await runningJob(w, 'hank');
    const seen: boolean[] = [];
    job.onControl((control) => seen.push(control.paused));
    const token = await hub.token('hank');
    await hub.post(`/v1/jobs/${job.id}/pause`, {}, token);
    await waitFor(() => seen.length === 1, 'pause', CONTROL_DEADLINE_MS);
    await hub.post(`/v1/jobs/${job.id}/resume`, {}, token);
    await waitFor(() => seen.length === 2, 'resume', CONTROL_DEADLINE_MS);
    expect(seen).toEqual([true, false]);
    await job.complete();
  });
});
