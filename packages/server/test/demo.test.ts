/**
 * The demo workers against a real hub: they create jobs and report through the
 * REST API with an API key, and everything is checked through that API too.
 * Time is the demo's own clock, an injected `Ticker` whose ticks the test counts;
 * nothing here measures the wall clock.
 */
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JobEvent, type JobState, TERMINAL_STATUSES } from '@headway/protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DemoHandle, startDemo, Ticker } from '../src/demo/index.js';
import { createServer, type HeadwayServer } from '../src/server.js';

const API_KEY = 'hw_demo_test_key_0123456789abcdef';
const JWT_SECRET = 'headway-demo-test-secret-0123456789abcdef-0123';
const OWNER = 'demo';

const realFetch = globalThis.fetch;
/** The demo's clock: every running job reports at most once per tick. */
const ticker = new Ticker();

/**
 * The demo's requests go through this wrapper: it records them (with the tick
 * they were sent in, and whether the hub answered them) and, while
 * `faults` is on, loses some replies after the hub has applied the request
 * (the worker must retry without double-applying) and answers some with a 503
 * without forwarding them (the worker must back off and retry).
 */
const traffic: { method: string; path: string; jobs: number; tick: number; answered: boolean }[] = [];
/** The tick of each job's first creation request, and of the first request reporting its completion. */
const createdAt = new Map<string, number>();
const completedAt = new Map<string, number>();
let faults = false;
let sent = 0;
const injected = { lostReplies: 0, unavailable: 0 };

function faultyFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const method = init?.method ?? 'GET';
  let jobs = 0;
  if (method === 'POST' && url.pathname === '/v1/events' && typeof init?.body === 'string') {
    const events = (JSON.parse(init.body) as { events: { job: string; kind: string }[] }).events;
    jobs = new Set(events.map((e) => e.job)).size;
    for (const e of events)
      if (e.kind === 'completed' && !completedAt.has(e.job)) completedAt.set(e.job, ticker.ticks);
  }
  if (method === 'POST' && url.pathname === '/v1/jobs' && typeof init?.body === 'string') {
    const { id } = JSON.parse(init.body) as { id: string };
    if (!createdAt.has(id)) createdAt.set(id, ticker.ticks);
  }
  const record = { method, path: url.pathname, jobs, tick: ticker.ticks, answered: false };
  traffic.push(record);
  if (faults && method === 'POST' && url.pathname.endsWith('/events')) {
    sent++;
    if (sent % 11 === 0) {
      injected.unavailable++;
      const body = { error: { code: 'HW_ERR_STORE_UNAVAILABLE', message: 'injected' } };
      return Promise.resolve(
        new Response(JSON.stringify(body), {
          status: 503,
          headers: { 'content-type': 'application/json', 'retry-after': '0' },
        }),
      );
    }
    if (sent % 7 === 0) {
      injected.lostReplies++;
      return realFetch(input, init).then(() => {
        throw new TypeError('fetch failed');
      });
    }
  }
  return realFetch(input, init).then((res) => {
    record.answered = res.ok;
    return res;
  });
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by assertions.
async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await realFetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${API_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function jobs(query = ''): Promise<JobState[]> {
  return (await api<{ jobs: JobState[] }>('GET', `/v1/jobs?owner=${OWNER}&limit=500${query}`)).jobs;
}

async function eventsOf(id: string): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for (let since = 0; ; ) {
    const page = await api<{ events: JobEvent[]; next?: number }>(
      'GET',
      `/v1/jobs/${id}/events?since=${since}&limit=1000`,
    );
    all.push(...page.events);
    if (page.next === undefined) return all;
    since = page.next;
  }
}

/** Poll `probe` until it returns a value (vitest's `vi.waitFor`); `timeoutMs` only bounds a hang. */
function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (value === undefined) throw new Error(`timed out waiting for ${what}`);
      return value;
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

/**
 * A barrier for "nothing more arrived": resolves once the demo has sent a report
 * request `ticks` ticks from now and the hub answered it. The worker sends one
 * request at a time, with everything queued before it, so every report made
 * until then is stored by the time this resolves.
 */
async function reportsSettled(ticks = 3): Promise<void> {
  const after = ticker.ticks + ticks;
  await waitFor(
    'a later report request to be answered',
    async () => traffic.find((t) => t.path === '/v1/events' && t.tick >= after && t.answered),
    10_000,
  );
}

/** Async-hook `destroy` callbacks run in an immediate: two turns let those already due arrive. */
async function destroyHooksRan(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
}
const isMedia = (j: JobState) => j.name.startsWith('Process ');
const isFinished = (j: JobState) => TERMINAL_STATUSES.includes(j.status);
/**
 * Timers and immediates created by the demo module and not yet fired or cleared.
 * (Keep-alive sockets of HTTP clients and servers hold timers of their own, so a
 * process-wide count would not tell whose they are.)
 */
const demoTimers = new Map<number, string>();
let demoTimersSeen = 0;
const timerHook = createHook({
  init(id, type) {
    if (type !== 'Timeout' && type !== 'Immediate') return;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 30;
    const stack = new Error().stack ?? '';
    Error.stackTraceLimit = limit;
    // The demo's own timers, and the worker SDK's that it runs on.
    if (!stack.includes('/server/src/demo/') && !stack.includes('/worker/src/')) return;
    demoTimersSeen++;
    demoTimers.set(id, `${type}\n${stack}`);
  },
  destroy(id) {
    demoTimers.delete(id);
  },
});

let dir: string;
let server: HeadwayServer;
let url: string;
let demo: DemoHandle | null = null;
const warnings: { obj: object; msg?: string }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-demo-'));
  server = await createServer({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    dataDir: dir,
    jwtSecret: JWT_SECRET,
    apiKeys: [API_KEY],
  });
  url = await server.listen();
  globalThis.fetch = faultyFetch as typeof fetch;
  timerHook.enable();
  faults = true;
  demo = startDemo({
    url,
    apiKey: API_KEY,
    owner: OWNER,
    speed: 20,
    ticker,
    logger: { info() {}, warn: (obj, msg) => warnings.push({ obj, msg }) },
  });
});

afterAll(async () => {
  await demo?.stop();
  timerHook.disable();
  globalThis.fetch = realFetch;
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('demo workers', () => {
  it('create jobs that start moving at once, reporting through batched requests', async () => {
    const running = await waitFor(
      'three running jobs',
      async () => {
        const list = (await jobs()).filter((j) => j.status === 'running' && j.children === null);
        return list.length >= 3 ? list : undefined;
      },
      3_000,
    );
    const before = running[0]!;
    const after = await waitFor(
      'the job to move on',
      async () => {
        const state = await api<JobState>('GET', `/v1/jobs/${before.id}`);
        const moved = isFinished(state) || state.progress.percent > before.progress.percent;
        return moved ? state : undefined;
      },
      10_000,
    );
    expect(after.seq).toBeGreaterThan(before.seq);
    if (!isFinished(after)) expect(after.progress.percent).toBeGreaterThan(before.progress.percent);

    // Reports of several jobs went out in one request.
    expect(traffic.some((t) => t.path === '/v1/events' && t.jobs >= 2)).toBe(true);
  });

  it('run media jobs through their stage plan, in order, to a result, despite lost replies and 503s', async () => {
    const done = await waitFor(
      'a completed media job',
      async () => (await jobs('&status=completed')).find(isMedia),
      15_000,
    );
    expect(injected.lostReplies).toBeGreaterThan(0);
    expect(injected.unavailable).toBeGreaterThan(0);
    faults = false;

    expect(done.name).toMatch(/^Process [\w.-]+\.(mp4|mov|mkv|webm)$/);
    expect(done.stages.map((s) => [s.name, s.weight])).toEqual([
      ['download', 2],
      ['transcode', 4],
      ['transcribe', 3],
      ['translate', 1],
    ]);
    expect(done.metadata).toMatchObject({
      source: expect.stringContaining(done.name.slice('Process '.length)),
      durationSeconds: expect.any(Number),
      resolution: expect.stringMatching(/^\d+x\d+$/),
      languages: expect.arrayContaining(['en']),
      detectedLanguage: 'en',
    });
    expect(done.result).toMatchObject({ url: expect.stringMatching(/^https:\/\/cdn\.example\.com\/.+/) });
    expect(done.progress.percent).toBe(100);

    const events = await eventsOf(done.id);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    // Each stage exactly once and in plan order: a retried report was never applied twice.
    const stages = events.filter((e) => e.kind === 'stage').map((e) => (e.data as { name: string }).name);
    expect(stages).toEqual(['download', 'transcode', 'transcribe', 'translate']);
    expect(events.at(-1)!.kind).toBe('completed');

    const progress = events.filter((e) => e.kind === 'progress');
    const download = progress.filter((e) => (e.data as { unit?: string }).unit === 'bytes');
    expect(download.length).toBeGreaterThan(0);
    const total = (download[0]!.data as { total: number }).total;
    expect(total).toBeGreaterThanOrEqual(200 * 1024 * 1024);
    expect(total).toBeLessThanOrEqual(2048 * 1024 * 1024);
    const currents = download.map((e) => (e.data as { current: number }).current);
    expect([...currents].sort((a, b) => a - b)).toEqual(currents);
    expect(progress.some((e) => (e.data as { unit?: string }).unit === 'frames')).toBe(true);
    const logs = events.filter((e) => e.kind === 'log').map((e) => (e.data as { message: string }).message);
    expect(logs.some((m) => m.startsWith('Detected language: en'))).toBe(true);
    expect(logs.some((m) => /Transcribed \d+ of \d+ segments/.test(m))).toBe(true);

    // About four reports a second per job, not more: at most one progress report per
    // tick of the demo's clock (one every 250 ms) while the job ran, and the final 100 %.
    const ticks = completedAt.get(done.id)! - createdAt.get(done.id)!;
    expect(progress.length).toBeLessThanOrEqual(ticks + 1);
  });

  it('roll a playlist import up from its ten children, two or three at a time, to completion', async () => {
    const parent = await waitFor(
      'a completed playlist import',
      async () => (await jobs('&status=completed')).find((j) => j.name.startsWith('Import playlist')),
      20_000,
    );
    expect(parent.name).toMatch(/^Import playlist ".+" \(10 videos\)$/);
    expect(parent.stages).toEqual([]);
    expect(parent.children).toMatchObject({ total: 10, completed: 10, failed: 0, cancelled: 0 });
    expect(parent.progress.percent).toBe(100);

    const children = (await jobs(`&parent=${parent.id}`)).sort((a, b) =>
      a.createdAt.localeCompare(b.createdAt),
    );
    expect(children).toHaveLength(10);
    for (const child of children) {
      expect(child.status).toBe('completed');
      expect(child.progress.unit).toBe('bytes');
    }

    // At most three children ran at once.
    const spans = children.map((c) => [Date.parse(c.startedAt!), Date.parse(c.finishedAt!)] as const);
    const overlap = Math.max(
      ...spans.map(([start]) => spans.filter(([s, e]) => s <= start && start < e).length),
    );
    expect(overlap).toBeLessThanOrEqual(3);

    // The parent's percent rose with its children before it completed.
    const rollups = (await eventsOf(parent.id)).filter((e) => e.kind === 'children');
    const sums = rollups.map((e) => (e.data as { percentSum: number }).percentSum);
    expect(sums.length).toBeGreaterThan(5);
    expect(new Set(sums).size).toBeGreaterThan(3);
  });

  it('honour a cancel request within about a second', async () => {
    const target = await waitFor(
      'a media job early in its run',
      async () => (await jobs('&status=running')).find((j) => isMedia(j) && j.stage?.name === 'download'),
      10_000,
    );
    await api('POST', `/v1/jobs/${target.id}/cancel`, { reason: 'test' });
    const cancelled = await waitFor(
      'the worker to acknowledge the cancel',
      async () => {
        const state = await api<JobState>('GET', `/v1/jobs/${target.id}`);
        return state.status === 'cancelled' ? state : undefined;
      },
      10_000,
    );
    expect(cancelled.control).toEqual({ cancelRequested: false, paused: false });
    // Within about a second: at most the one report in flight landed between the
    // request and the acknowledgement.
    const kinds = (await eventsOf(target.id)).map((e) => e.kind);
    const after = kinds.slice(kinds.indexOf('cancel_requested') + 1);
    expect(after.at(-1)).toBe('cancelled');
    expect(after.length).toBeLessThanOrEqual(3);
  });

  it('hold a paused job still, then resume it where it was', async () => {
    const target = await waitFor(
      'a media job early in its run',
      async () => (await jobs('&status=running')).find((j) => isMedia(j) && j.stage?.name === 'download'),
      10_000,
    );
    await api('POST', `/v1/jobs/${target.id}/pause`);
    const paused = await waitFor(
      'the worker to report paused',
      async () => {
        const state = await api<JobState>('GET', `/v1/jobs/${target.id}`);
        return state.status === 'paused' ? state : undefined;
      },
      10_000,
    );
    // Three ticks at which a running job reports, then a barrier for what was sent in them.
    await reportsSettled(3);
    const still = await api<JobState>('GET', `/v1/jobs/${target.id}`);
    expect(still.seq).toBe(paused.seq);

    await api('POST', `/v1/jobs/${target.id}/resume`);
    await waitFor(
      'the job to resume and finish',
      async () => {
        const state = await api<JobState>('GET', `/v1/jobs/${target.id}`);
        return isFinished(state) ? state : undefined;
      },
      8_000,
    );
    const kinds = (await eventsOf(target.id)).map((e) => e.kind);
    const at = kinds.indexOf('paused');
    expect(kinds.slice(at, at + 3)).toEqual(['paused', 'resume_requested', 'resumed']);
    expect(kinds.slice(at + 3)).toContain('progress');
  });

  it('fail about one media job in six, retryably, and retry it as a new job', async () => {
    const failed = await waitFor(
      'a failed media job',
      async () => (await jobs('&status=failed')).find(isMedia),
      10_000,
    );
    expect(['TRANSCODE_FAILED', 'ASR_TIMEOUT']).toContain(failed.error?.code);
    expect(failed.error).toMatchObject({
      retryable: true,
      stage: expect.stringMatching(/^trans(code|cribe)$/),
    });
    const retry = await waitFor(
      'the retry of the failed job',
      async () => (await jobs()).find((j) => j.metadata.retryOf === failed.id),
      10_000,
    );
    expect(retry.name).toBe(failed.name);
    expect(retry.metadata).toMatchObject({ source: failed.metadata.source, attempt: 2 });
  });

  it('stop a playlist import when its parent is cancelled', async () => {
    const parent = await waitFor(
      'a running playlist import with videos left',
      async () =>
        (await jobs('&status=running')).find(
          (j) => j.name.startsWith('Import playlist') && j.children !== null && j.children.completed < 6,
        ),
      10_000,
    );
    await api('POST', `/v1/jobs/${parent.id}/cancel`);
    const children = await waitFor(
      'every video of the playlist to stop',
      async () => {
        const list = await jobs(`&parent=${parent.id}`);
        return list.every(isFinished) ? list : undefined;
      },
      10_000,
    );
    expect(children.filter((c) => c.status === 'cancelled').length).toBeGreaterThan(3);
    // The worker acknowledges the cancel within a second; the hub may already have
    // finished the parent from its children's outcomes by then.
    const ended = await waitFor(
      'the playlist import to end',
      async () => {
        const state = await api<JobState>('GET', `/v1/jobs/${parent.id}`);
        return isFinished(state) ? state : undefined;
      },
      10_000,
    );
    expect(['cancelled', 'completed']).toContain(ended.status);
    expect(ended.children).toMatchObject({ total: 10 });
  });

  it('stop promptly, leaving no timers, no further events and no job running', async () => {
    await demo!.stop();
    const requests = traffic.length;
    await destroyHooksRan();
    expect(demoTimersSeen).toBeGreaterThan(0);
    expect([...demoTimers.values()]).toEqual([]);

    const snapshot = await jobs();
    expect(snapshot.filter((j) => !isFinished(j))).toEqual([]);
    // The sentinel: a job of another owner, created and reported after the demo stopped.
    // Once its report is stored, a late report of the demo would be stored too.
    await api('POST', '/v1/jobs', { id: 'sentinel', owner: 'sentinel', name: 'Sentinel' });
    const sentinel = await api<{ seq: number }>('POST', '/v1/jobs/sentinel/events', {
      events: [{ kind: 'log', message: 'after the demo stopped' }],
    });
    expect(sentinel.seq).toBe(2);
    expect(traffic.length).toBe(requests);
    const later = await jobs();
    expect(later.map((j) => [j.id, j.seq])).toEqual(snapshot.map((j) => [j.id, j.seq]));
    expect(warnings.filter((w) => w.msg !== 'demo: retrying request')).toEqual([]);
  });
});

describe('demo workers without a hub', () => {
  it('log, back off and still stop promptly when the hub cannot be reached', async () => {
    const logged: string[] = [];
    const unreachable = startDemo({
      url: 'http://127.0.0.1:1',
      apiKey: API_KEY,
      owner: OWNER,
      speed: 20,
      logger: { info() {}, warn: (_obj, msg) => logged.push(msg ?? '') },
    });
    await waitFor('a retry to be logged', async () => (logged.length > 0 ? true : undefined), 10_000);
    await unreachable.stop();
    expect(logged).toContain('demo: retrying request');
    await destroyHooksRan();
    expect([...demoTimers.values()]).toEqual([]);
  });
});
