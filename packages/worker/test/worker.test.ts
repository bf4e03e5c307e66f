import type { JobEvent, JobState } from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HeadwayWorker, HeadwayWorkerError, WorkerErrorCode } from '../src/index.js';

let hub: TestHub;
let worker: HeadwayWorker | null = null;
let jobCounter = 0;
const uid = (name: string) => `w-${process.pid}-${Date.now().toString(36)}-${++jobCounter}-${name}`;

beforeEach(async () => {
  hub = await startHub();
});

afterEach(async () => {
  await worker?.close();
  worker = null;
  await hub.close();
});

function open(options: ConstructorParameters<typeof HeadwayWorker>[0] = {}): HeadwayWorker {
  worker = new HeadwayWorker({ url: hub.url, apiKey: hub.apiKey, onError: () => {}, ...options });
  return worker;
}

async function events(id: string): Promise<JobEvent[]> {
  return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0`)).body.events;
}

async function state(id: string): Promise<JobState> {
  return (await hub.get<JobState>(`/v1/jobs/${id}`)).body;
}

describe('options', () => {
  it('names the missing URL and API key', () => {
    const noUrl = catchError(() => new HeadwayWorker({ env: {} }));
    expect(noUrl).toBeInstanceOf(TypeError);
    expect(noUrl).toMatchObject({ code: WorkerErrorCode.INVALID_OPTION, option: 'url' });
    const noKey = catchError(() => new HeadwayWorker({ env: { HEADWAY_URL: 'http://127.0.0.1:1' } }));
    expect(noKey).toMatchObject({ code: WorkerErrorCode.INVALID_OPTION, option: 'apiKey' });
  });

  it('reads HEADWAY_URL and HEADWAY_API_KEY', () => {
    const w = new HeadwayWorker({ env: { HEADWAY_URL: 'http://127.0.0.1:9/', HEADWAY_API_KEY: 'k' } });
    expect(w.options.url).toBe('http://127.0.0.1:9');
    expect(w.options.apiKey).toBe('k');
    return w.close();
  });

  it('refuses invalid values with the option named', () => {
    const env = { HEADWAY_URL: 'http://127.0.0.1:9', HEADWAY_API_KEY: 'k' };
    expect(catchError(() => new HeadwayWorker({ env, url: 'ftp://x' }))).toMatchObject({ option: 'url' });
    expect(catchError(() => new HeadwayWorker({ env, progressIntervalMs: -1 }))).toMatchObject({
      code: WorkerErrorCode.INVALID_OPTION,
      option: 'progressIntervalMs',
    });
    expect(catchError(() => new HeadwayWorker({ env, maxBatchEvents: 5000 }))).toMatchObject({
      option: 'maxBatchEvents',
    });
    expect(catchError(() => new HeadwayWorker({ env, control: 'carrier-pigeon' as 'poll' }))).toMatchObject({
      option: 'control',
    });
  });
});

describe('reporting', () => {
  it('creates a job and reports stages, progress, logs, metadata and the result', async () => {
    const w = open({ control: 'none' });
    const id = uid('report');
    const job = await w.createJob({
      id,
      owner: 'alice',
      name: 'Transcode',
      stages: [{ name: 'download' }, { name: 'transcode', weight: 3 }],
    });
    expect(job.id).toBe(id);
    expect(job.state?.status).toBe('queued');
    job.stage('download', 'fetching');
    job.progress({ current: 50, total: 100, unit: 'bytes' });
    job.log('halfway', 'debug');
    job.metadata({ source: 's3://bucket/a.mp4' });
    job.stage('transcode');
    job.progress({ percent: 40 }, 'encoding');
    await job.complete({ url: 'https://example.test/a.mp4' });

    const kinds = (await events(id)).map((e) => e.kind);
    expect(kinds).toEqual([
      'created',
      'stage',
      'progress',
      'log',
      'metadata',
      'stage',
      'progress',
      'completed',
    ]);
    const final = await state(id);
    expect(final.status).toBe('completed');
    expect(final.result).toEqual({ url: 'https://example.test/a.mp4' });
    expect(final.metadata).toEqual({ source: 's3://bucket/a.mp4' });
    expect(job.ended).toBe(true);
  });

  it('reports a failure with its code and retryable flag', async () => {
    const w = open({ control: 'none' });
    const job = await w.createJob({ owner: 'alice', name: 'Import' });
    job.progress({ percent: 10 });
    await job.fail(Object.assign(new Error('upstream timed out'), { code: 'UPSTREAM_TIMEOUT' }), {
      retryable: true,
    });
    const final = await state(job.id);
    expect(final.status).toBe('failed');
    expect(final.error).toMatchObject({
      code: 'UPSTREAM_TIMEOUT',
      message: 'upstream timed out',
      retryable: true,
    });
    // After the end, reports are ignored and outcomes resolve without sending.
    job.progress({ percent: 50 });
    await job.complete();
    expect((await events(job.id)).map((e) => e.kind)).toEqual(['created', 'progress', 'failed']);
  });

  it('creates children that roll up into their parent', async () => {
    const w = open({ control: 'none' });
    const parent = await w.createJob({ owner: 'bob', name: 'Batch' });
    const a = await parent.child({ name: 'one' });
    const b = await parent.child({ name: 'two' });
    expect(a.state?.parent).toBe(parent.id);
    expect(a.state?.owner).toBe('bob');
    await a.complete();
    await b.complete();
    const final = await waitForState(parent.id, (s) => s.status === 'completed');
    expect(final.children).toMatchObject({ total: 2, completed: 2 });
  });

  it('reports for a job created elsewhere, with one handle per open job', async () => {
    const w = open({ control: 'none' });
    const id = uid('existing');
    await hub.post('/v1/jobs', { id, owner: 'carol' });
    const job = w.job(id);
    expect(w.job(id)).toBe(job);
    job.progress({ percent: 30 });
    await w.flush();
    expect((await state(id)).progress.percent).toBe(30);
    await job.complete();
  });

  it('refuses bad arguments with a stable code', async () => {
    const w = open({ control: 'none' });
    const job = await w.createJob({ owner: 'dave' });
    expect(catchError(() => job.progress({ percent: 101 }))).toMatchObject({ code: 'HW_ERR_INVALID_VALUE' });
    expect(catchError(() => job.progress({ current: 5, total: 4 }))).toMatchObject({
      code: 'HW_ERR_INVALID_VALUE',
    });
    expect(catchError(() => job.progress({} as { percent: number }))).toMatchObject({
      code: 'HW_ERR_INVALID_VALUE',
    });
    expect(catchError(() => job.stage(''))).toMatchObject({ code: 'HW_ERR_INVALID_VALUE' });
    expect(catchError(() => job.log('x', 'loud' as 'info'))).toMatchObject({ code: 'HW_ERR_INVALID_VALUE' });
    expect(catchError(() => w.job('no spaces allowed'))).toMatchObject({ code: 'HW_ERR_INVALID_MESSAGE' });
    await expect(w.createJob({ owner: '' })).rejects.toMatchObject({ code: 'HW_ERR_INVALID_MESSAGE' });
    await job.complete();
  });

  it('rejects createJob with the hub code for an existing id', async () => {
    const w = open({ control: 'none' });
    const id = uid('twice');
    await w.createJob({ id, owner: 'erin' });
    const err = await w.createJob({ id, owner: 'erin' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeadwayWorkerError);
    expect(err).toMatchObject({ code: 'HW_ERR_JOB_EXISTS', status: 409 });
  });

  it('reports a stage outside the plan to onError and keeps the job usable', async () => {
    const errors: HeadwayWorkerError[] = [];
    const w = open({ control: 'none', onError: (e) => errors.push(e) });
    const job = await w.createJob({ owner: 'frank', stages: [{ name: 'a' }, { name: 'b' }] });
    job.log('before');
    job.stage('zzz');
    job.log('after');
    await job.complete();
    // The refused event was isolated: the others of its request were applied.
    expect((await events(job.id)).map((e) => e.kind)).toEqual(['created', 'log', 'log', 'completed']);
    expect(errors.map((e) => e.code)).toEqual(['HW_ERR_INVALID_VALUE']);
  });

  it('is closed after close()', async () => {
    const w = open({ control: 'none' });
    const job = await w.createJob({ owner: 'gina' });
    await w.close();
    expect(() => w.job('x')).toThrow(HeadwayWorkerError);
    await expect(w.createJob({ owner: 'gina' })).rejects.toMatchObject({ code: WorkerErrorCode.CLOSED });
    expect(catchError(() => job.progress({ percent: 5 }))).toMatchObject({ code: WorkerErrorCode.CLOSED });
    await expect(job.complete()).rejects.toMatchObject({ code: WorkerErrorCode.CLOSED });
  });
});

function waitForState(id: string, check: (s: JobState) => boolean): Promise<JobState> {
  return waitFor(async () => {
    const s = await state(id);
    return check(s) ? s : undefined;
  }, `job ${id} to reach the expected state`);
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
