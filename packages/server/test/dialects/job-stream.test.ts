/**
 * job-stream (seed 2) in Chromium: the seed's `useJobProgress` hook (its effect,
 * in plain browser JavaScript), its `connectWithRetry` and its `pollJobStatus`
 * fallback, against a real hub. The page is served by a development server that
 * proxies the API, as the seed's relative `fetch('/api/v1/jobs/…')` needs.
 * Reconnect delays and the polling interval are scaled by `SCALE`.
 */
import { ErrorCode } from '@headway/protocol';
import { connect, startHub, type TestHub, waitFor } from '@headway/test-helpers';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { appHtml, browserSuite, createJob, portOf, report, uniqueId, wsBase } from './helpers.js';

/** The seed's 2 s … 10 s reconnect delays and 2 s polling become 100 ms … 500 ms and 100 ms. */
const SCALE = 0.05;
/** Slower for the reconnect through a hub restart: 200 ms … 1 s. */
const RESTART_SCALE = 0.1;

// biome-ignore lint/suspicious/noExplicitAny: messages are checked by the assertions.
type Message = Record<string, any>;

interface App {
  messages: Message[];
  state: { progress: number; status: string; error: string | null };
  closes: number[];
  scores: string[];
  pongsSent: number;
  retries: number[];
  polls: Message[];
  pollingStarted: boolean;
  login(token: string): Promise<number>;
  useJobProgress(jobId: string, query?: string): void;
  connectWithRetry(jobId: string): void;
}

declare global {
  interface Window {
    seed2: App;
  }
}

const CLIENT = `
const app = (window.seed2 = {
  messages: [], state: { progress: 0, status: 'connecting', error: null }, closes: [], scores: [],
  pongsSent: 0, retries: [], polls: [], pollingStarted: false,
});
const S = CONFIG.scale;
const setProgress = (p) => { app.state.progress = p; };
const setStatus = (s) => { app.state.status = s; };
const setError = (e) => { app.state.error = e; };
const fetchScore = (url) => { app.scores.push(url); };

app.login = async (token) =>
  (await fetch('/v1/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token } })).status;

// The hook's message handling.
function handle(ws) {
  ws.onmessage = (event) => {
    const update = JSON.parse(event.data);
    app.messages.push(update);
    switch (update.type) {
      case 'progress':
        setProgress(update.progress);
        break;
      case 'completed':
        setProgress(100);
        setStatus('completed');
        fetchScore(update.result_url);
        break;
      case 'error':
        setStatus('failed');
        setError(update.error.message);
        break;
      case 'heartbeat':
        ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }));
        app.pongsSent++;
        break;
    }
  };
  ws.onclose = (event) => app.closes.push(event.code);
}

// useJobProgress(jobId): the effect's body (query: the seed's future "?token=").
app.useJobProgress = (jobId, query = '') => {
  const ws = new WebSocket(\`\${CONFIG.ws}/api/v1/jobs/\${jobId}/stream\${query}\`);
  ws.onopen = () => setStatus('processing');
  handle(ws);
  ws.onerror = () => {
    setStatus('failed');
    setError('Connection error');
  };
};

// The seed's reconnection strategy and polling fallback.
let reconnectAttempts = 0;
const MAX_RECONNECTS = 5;
app.connectWithRetry = (jobId) => {
  const ws = new WebSocket(\`\${CONFIG.ws}/api/v1/jobs/\${jobId}/stream\`);
  handle(ws);
  ws.onerror = () => {
    if (reconnectAttempts < MAX_RECONNECTS) {
      reconnectAttempts++;
      const delay = Math.min(1000 * 2 ** reconnectAttempts, 10000) * S;
      app.retries.push(delay);
      setTimeout(() => app.connectWithRetry(jobId), delay);
    } else {
      pollJobStatus(jobId);
    }
  };
};
function pollJobStatus(jobId) {
  app.pollingStarted = true;
  const interval = setInterval(async () => {
    const response = await fetch(\`/api/v1/jobs/\${jobId}\`);
    const job = await response.json();
    app.polls.push(job);
    setProgress(job.progress);
    if (job.status === 'completed' || job.status === 'failed') clearInterval(interval);
  }, 2000 * S);
}
`;

describe('job-stream (seed 2)', () => {
  let hub: TestHub;
  const browser = browserSuite(() => hub);

  function openApp(scale = SCALE): Promise<Page> {
    return browser.open(appHtml({ ws: wsBase(hub), scale }, CLIENT), hub.url);
  }
  const seed2 = (page: Page) => page.evaluate(() => window.seed2);

  it('streams a job over the session cookie, answers heartbeats, and ends with completed', async () => {
    hub = await startHub({ limits: { heartbeatMs: 200 } });
    const job = uniqueId('score');
    await createJob(hub, { id: job, owner: 'alice', stages: [{ name: 'download' }, { name: 'separation' }] });
    const page = await openApp();
    expect(await page.evaluate((t) => window.seed2.login(t), await hub.token('alice'))).toBe(200);
    await page.evaluate((id) => window.seed2.useJobProgress(id), job);
    // The current state comes first.
    const first = await waitFor(async () => (await seed2(page)).messages[0], 'the current state');
    expect(first).toEqual({
      type: 'progress',
      job_id: job,
      progress: 0,
      stage: 'queued',
      message: '',
      timestamp: expect.any(String),
    });
    expect((await seed2(page)).state.status).toBe('processing');

    await report(hub, job, { kind: 'stage', name: 'download', message: 'Downloading audio' });
    await report(hub, job, { kind: 'progress', percent: 50 });
    await report(hub, job, { kind: 'stage', name: 'separation' });
    await report(hub, job, { kind: 'progress', percent: 50, message: 'Separated drums stem (2/4)' });
    const separated = await waitFor(
      async () => (await seed2(page)).messages.find((m) => m.message === 'Separated drums stem (2/4)'),
      'progress of the second stage',
    );
    expect(separated).toMatchObject({ type: 'progress', job_id: job, progress: 75, stage: 'separation' });
    expect(Date.parse(separated.timestamp)).not.toBeNaN();
    expect((await seed2(page)).state.progress).toBe(75);

    // Heartbeats every 200 ms here (30 s by default), each answered with a pong.
    await waitFor(async () => (await seed2(page)).pongsSent >= 2, 'heartbeats answered');
    const heartbeat = (await seed2(page)).messages.find((m) => m.type === 'heartbeat')!;
    expect(Object.keys(heartbeat).sort()).toEqual(['timestamp', 'type']);

    await report(hub, job, { kind: 'completed', result: { result_url: `/api/v1/scores/${job}` } });
    await waitFor(async () => (await seed2(page)).closes.length > 0, 'the end of the stream');
    const done = await seed2(page);
    expect(done.state).toEqual({ progress: 100, status: 'completed', error: null });
    expect(done.scores).toEqual([`/api/v1/scores/${job}`]);
    expect(done.messages.find((m) => m.type === 'completed')).toEqual({
      type: 'completed',
      job_id: job,
      progress: 100,
      result_url: `/api/v1/scores/${job}`,
      duration_seconds: expect.any(Number),
      timestamp: expect.any(String),
    });
    expect(done.closes).toEqual([1000]);
  });

  it('ends the stream with the error of a failed job (?token= in the URL)', async () => {
    hub = await startHub();
    const job = uniqueId('score');
    await createJob(hub, { id: job, owner: 'alice', stages: [{ name: 'download' }, { name: 'separation' }] });
    const page = await openApp();
    await page.evaluate(
      ([id, q]) => window.seed2.useJobProgress(id!, q),
      [job, `?token=${await hub.token('alice')}`],
    );
    await waitFor(async () => (await seed2(page)).messages[0], 'the current state');
    await report(hub, job, { kind: 'stage', name: 'separation' }, { kind: 'progress', percent: 10 });
    await report(hub, job, {
      kind: 'failed',
      error: { code: 'GPU_OOM', message: 'GPU out of memory during source separation', retryable: true },
    });
    await waitFor(async () => (await seed2(page)).closes.length > 0, 'the end of the stream');
    const failed = await seed2(page);
    expect(failed.state).toEqual({
      progress: 55,
      status: 'failed',
      error: 'GPU out of memory during source separation',
    });
    expect(failed.messages.at(-1)).toEqual({
      type: 'error',
      job_id: job,
      error: {
        message: 'GPU out of memory during source separation',
        retryable: true,
        stage: 'separation',
        code: 'GPU_OOM',
      },
      timestamp: expect.any(String),
    });
    expect(failed.closes).toEqual([1000]);
  });

  it('reconnects with backoff when the hub was down', async () => {
    hub = await startHub();
    const job = uniqueId('score');
    await createJob(hub, { id: job, owner: 'alice' });
    const page = await openApp(RESTART_SCALE);
    await page.evaluate((t) => window.seed2.login(t), await hub.token('alice'));
    const port = portOf(hub);
    await hub.server.close();
    await page.evaluate((id) => window.seed2.connectWithRetry(id), job);
    await waitFor(async () => (await seed2(page)).retries.length >= 1, 'a failed connection');
    hub = await hub.restart({ port });
    await report(hub, job, { kind: 'progress', percent: 30 });
    const resumed = await waitFor(
      async () => (await seed2(page)).messages.find((m) => m.type === 'progress' && m.progress === 30),
      'the stream after the reconnect',
    );
    expect(resumed.job_id).toBe(job);
    expect((await seed2(page)).retries[0]).toBe(2000 * RESTART_SCALE);
  });

  it('falls back to polling when the per-IP limit refuses the stream', async () => {
    hub = await startHub({ dialects: { streamConnectionsPerMinute: 2 } });
    const job = uniqueId('score');
    await createJob(hub, { id: job, owner: 'alice' });
    const page = await openApp();
    await page.evaluate((t) => window.seed2.login(t), await hub.token('alice'));
    // Two upgrades use this minute's allowance.
    const token = await hub.token('alice');
    for (let i = 0; i < 2; i++) {
      const c = await connect(`${wsBase(hub)}/api/v1/jobs/${job}/stream?token=${token}`);
      await c.close();
    }
    await page.evaluate((id) => window.seed2.connectWithRetry(id), job);
    await waitFor(async () => (await seed2(page)).pollingStarted, 'the polling fallback');
    expect((await seed2(page)).retries).toEqual([2000, 4000, 8000, 10000, 10000].map((ms) => ms * SCALE));

    await report(hub, job, { kind: 'progress', percent: 40, message: 'transcribing' });
    const polled = await waitFor(
      async () => (await seed2(page)).polls.find((p) => p.progress === 40),
      'a poll with progress',
    );
    expect(polled).toMatchObject({
      job_id: job,
      status: 'processing',
      stage: 'running',
      message: 'transcribing',
    });
    await report(hub, job, { kind: 'completed', result: `/api/v1/scores/${job}` });
    const last = await waitFor(
      async () => (await seed2(page)).polls.find((p) => p.status === 'completed'),
      'the completed poll',
    );
    expect(last).toMatchObject({ progress: 100, result_url: `/api/v1/scores/${job}` });
    expect((await seed2(page)).state.progress).toBe(100);
    // The limit is per minute: this one is refused at the upgrade.
    const refused = await connect(`${wsBase(hub)}/api/v1/jobs/${job}/stream`).catch((err) => err);
    expect(refused.status).toBe(429);
  });

  it('serves public jobs without a token; a hidden job answers like a missing one', async () => {
    hub = await startHub();
    const shown = uniqueId('score');
    const hidden = uniqueId('score');
    await createJob(hub, { id: shown, owner: 'alice', public: true });
    await createJob(hub, { id: hidden, owner: 'alice' });

    const stream = (path: string) =>
      new Promise<{ messages: Message[]; code: number }>((resolve) => {
        const ws = new WebSocket(`${wsBase(hub)}${path}`);
        const messages: Message[] = [];
        ws.on('message', (d) => {
          messages.push(JSON.parse(d.toString()) as Message);
          if (messages.length === 1 && messages[0]!.type === 'progress') ws.close();
        });
        ws.on('close', (code) => resolve({ messages, code }));
      });
    const pub = await stream(`/api/v1/jobs/${shown}/stream`);
    expect(pub.messages[0]).toMatchObject({ type: 'progress', job_id: shown, progress: 0 });

    /** A message with its job id and time taken out, to compare answers for different ids. */
    const strip = (m: Message) =>
      JSON.parse(JSON.stringify({ ...m, timestamp: undefined }).replaceAll(m.job_id, '<id>')) as Message;
    const anonymous = await stream(`/api/v1/jobs/${hidden}/stream`);
    const missing = await stream('/api/v1/jobs/no-such-job/stream');
    expect(anonymous.code).toBe(1000);
    expect(missing.code).toBe(1000);
    expect(anonymous.messages.map(strip)).toEqual(missing.messages.map(strip));
    expect(anonymous.messages[0]).toMatchObject({
      type: 'error',
      job_id: hidden,
      error: { code: ErrorCode.NOT_FOUND, retryable: false, stage: null },
    });
    const bob = await stream(`/api/v1/jobs/${hidden}/stream?token=${await hub.token('bob')}`);
    expect(bob.messages.map(strip)).toEqual(missing.messages.map(strip));

    const wrong = await stream(`/api/v1/jobs/${shown}/stream?token=wrong`);
    expect(wrong.code).toBe(1008);
    expect(wrong.messages[0]).toMatchObject({ type: 'error', error: { code: ErrorCode.UNAUTHORIZED } });

    // The polling endpoint answers alike.
    expect((await hub.get(`/api/v1/jobs/${shown}`, null)).status).toBe(200);
    const hiddenPoll = await hub.get(`/api/v1/jobs/${hidden}`, null);
    const missingPoll = await hub.get('/api/v1/jobs/no-such-job', null);
    expect(hiddenPoll.status).toBe(404);
    expect(missingPoll.status).toBe(404);
    expect((hiddenPoll.body as Message).error.code).toBe(ErrorCode.NOT_FOUND);
    expect((await hub.get(`/api/v1/jobs/${hidden}`, await hub.token('alice'))).status).toBe(200);
    expect((await hub.get(`/api/v1/jobs/${hidden}?token=${await hub.token('alice')}`, null)).status).toBe(
      200,
    );
    expect((await hub.get(`/api/v1/jobs/${hidden}`, 'wrong')).status).toBe(401);
  });

  it('keeps a client that answers heartbeats and drops one that answers nothing', async () => {
    hub = await startHub({ limits: { heartbeatMs: 100 } });
    const job = uniqueId('score');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    const url = `${wsBase(hub)}/api/v1/jobs/${job}/stream`;
    // Neither answers protocol pings: only the JSON pong keeps the first alive.
    const answering = await connect(url, { autoPong: false });
    const silent = await connect(url, { autoPong: false });
    let heartbeats = 0;
    answering.ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as Message;
      if (m.type !== 'heartbeat') return;
      heartbeats++;
      answering.ws.send(JSON.stringify({ type: 'pong', timestamp: m.timestamp }));
    });
    try {
      const { code } = await silent.closed;
      expect(code).toBe(1006);
      await waitFor(() => heartbeats >= 4, 'four heartbeats');
      expect(answering.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await answering.close();
      await silent.close();
    }
  });
});
