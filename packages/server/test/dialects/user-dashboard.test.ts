/**
 * user-dashboard (seed 4) in Chromium: the seed's `useWebSocket()` hook (its
 * effect, in plain browser JavaScript) — `?token=` from `getAuthToken()`, one
 * entry per `job_id`, reconnect after 3 s, 6 s, 12 s … 30 s — and the design's
 * reconnection strategy, which reads missed updates from
 * `/api/jobs/{id}/progress-history?since=`. Backoffs are scaled by `SCALE`.
 */
import { ErrorCode } from '@headway/protocol';
import { connect, startHub, type TestClient, type TestHub, waitFor } from '@headway/test-helpers';
import type { Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { appHtml, browserSuite, createJob, portOf, report, uniqueId, wsBase } from './helpers.js';

/** 3 s … 30 s become 60 ms … 600 ms. */
const SCALE = 0.02;

// biome-ignore lint/suspicious/noExplicitAny: updates are checked by the assertions.
type Update = Record<string, any>;

interface App {
  jobProgress: Record<string, Update>;
  log: Update[];
  isConnected: boolean;
  reconnecting: boolean;
  opens: number;
  closes: number[];
  backoffs: number[];
  history: { id: string; since: string; status: number; events: Update[] }[];
  setToken(token: string): void;
  start(): void;
  stop(): void;
}

declare global {
  interface Window {
    seed4: App;
  }
}

const CLIENT = `
const app = (window.seed4 = {
  jobProgress: {}, log: [], isConnected: false, reconnecting: false, opens: 0, closes: [], backoffs: [], history: [],
});
let token = null;
const getAuthToken = () => token;
app.setToken = (t) => { token = t; };
let retryCount = 0;
let stopped = false;

// The design's reconnection strategy: read what was missed while disconnected.
async function fetchMissed() {
  for (const [id, p] of Object.entries(app.jobProgress)) {
    if (p.status !== 'pending' && p.status !== 'processing') continue;
    const since = new Date(p.timestamp).toISOString();
    const response = await fetch(\`/api/jobs/\${id}/progress-history?since=\${encodeURIComponent(since)}\`, {
      headers: { Authorization: 'Bearer ' + getAuthToken() },
    });
    const events = await response.json();
    app.history.push({ id, since, status: response.status, events });
    for (const e of events) {
      const known = app.jobProgress[e.job_id];
      if (!known || known.timestamp <= e.timestamp) app.jobProgress[e.job_id] = e;
    }
  }
}

// useWebSocket(): the hook's effect.
app.start = () => {
  const connect = () => {
    if (stopped) return;
    const ws = new WebSocket(\`\${CONFIG.ws}/api/ws/progress?token=\${getAuthToken()}\`);
    ws.onopen = () => {
      app.isConnected = true;
      app.reconnecting = false;
      retryCount = 0;
      if (app.opens++ > 0) fetchMissed();
    };
    ws.onmessage = (event) => {
      const update = JSON.parse(event.data);
      app.log.push(update);
      app.jobProgress[update.job_id] = update;
    };
    ws.onclose = (event) => {
      app.closes.push(event.code);
      app.isConnected = false;
      app.reconnecting = true;
      // Exponential backoff: 3s, 6s, 12s, max 30s
      const backoff = Math.min(3000 * Math.pow(2, retryCount), 30000) * CONFIG.scale;
      retryCount++;
      app.backoffs.push(backoff);
      setTimeout(connect, backoff);
    };
    ws.onerror = () => {};
    app.ws = ws;
  };
  connect();
};
app.stop = () => {
  stopped = true;
  app.ws.close();
};
`;

describe('user-dashboard (seed 4)', () => {
  let hub: TestHub;
  const clients: TestClient[] = [];
  // Stopped first, so that the page does not reconnect while the hub goes away.
  const browser = browserSuite(
    () => hub,
    (page) => page.evaluate(() => window.seed4?.stop()).catch(() => {}),
  );
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });

  async function openDashboard(user: string): Promise<Page> {
    const page = await browser.open(appHtml({ ws: wsBase(hub), scale: SCALE }, CLIENT), hub.url);
    await page.evaluate((t) => window.seed4.setToken(t), await hub.token(user));
    await page.evaluate(() => window.seed4.start());
    await waitFor(async () => (await seed4(page)).isConnected, 'the connection');
    return page;
  }
  const seed4 = (page: Page) => page.evaluate(() => window.seed4);
  const entry = async (page: Page, job: string) => (await seed4(page)).jobProgress[job];

  it('shows a batch as one entry counting its videos, and catches up after a reconnect', async () => {
    hub = await startHub();
    const list = uniqueId('list');
    const videos = [1, 2, 3].map((i) => `${list}-video-${i}`);
    await createJob(hub, { id: list, owner: 'alice', name: 'Import list' });
    for (const id of videos) await createJob(hub, { id, owner: 'alice', parent: list });
    const page = await openDashboard('alice');
    // The batch is active: it is on the dashboard at once, its videos are not.
    await waitFor(() => entry(page, list), 'the batch');
    expect(await entry(page, list)).toEqual({
      job_id: list,
      status: 'pending',
      progress: 0,
      current_video: 0,
      total_videos: 3,
      message: '',
      error: null,
      timestamp: expect.any(Number),
    });

    const process = async (i: number) => {
      await report(hub, list, { kind: 'metadata', metadata: { video_id: videos[i] } });
      await report(hub, videos[i]!, { kind: 'progress', percent: 50 });
      await report(hub, videos[i]!, { kind: 'completed' });
    };
    await process(0);
    const first = await waitFor(
      async () => ((await entry(page, list))?.current_video === 1 ? entry(page, list) : undefined),
      'the first video',
    );
    expect(first).toMatchObject({ status: 'processing', progress: 33, total_videos: 3, video_id: videos[0] });

    // The hub restarts while the client's token is refused: it stays away while
    // the second video is processed, then reconnects and reads what it missed.
    await page.evaluate(() => window.seed4.setToken('expired'));
    hub = await hub.restart({ port: portOf(hub) });
    await waitFor(async () => (await seed4(page)).closes.includes(1008), 'a refused reconnect');
    await process(1);
    await page.evaluate((t) => window.seed4.setToken(t), await hub.token('alice'));
    // A refused attempt opens before its 1008 close, so the client may also have
    // asked with the refused token (401); the read that counts is the accepted one.
    const caughtUp = await waitFor(
      async () => (await seed4(page)).history.find((h) => h.status === 200),
      'the history read',
    );
    expect(caughtUp.events.map((e) => e.current_video)).toContain(2);
    expect(
      caughtUp.events.every(
        (e) => e.job_id === list && Date.parse(e.created_at) > Date.parse(caughtUp.since),
      ),
    ).toBe(true);
    const state = await seed4(page);
    expect(state.closes[0]).toBe(1001);
    // 3 s, then doubling while no connection opens (an opened-then-refused one starts over).
    expect(state.backoffs[0]).toBe(3000 * SCALE);
    const series = [3000, 6000, 12000, 24000, 30000].map((ms) => ms * SCALE);
    for (const b of state.backoffs) expect(series).toContain(b);
    expect(state.jobProgress[list]).toMatchObject({ current_video: 2, progress: 66, video_id: videos[1] });

    await process(2);
    const done = await waitFor(
      async () => ((await entry(page, list))?.status === 'completed' ? entry(page, list) : undefined),
      'the finished batch',
    );
    expect(done).toMatchObject({ progress: 100, current_video: 3, total_videos: 3, error: null });
    expect(Object.keys((await seed4(page)).jobProgress)).toEqual([list]);
  });

  it('reports counted videos, a failure, a cancel and a deletion', async () => {
    hub = await startHub();
    const counted = uniqueId('list');
    const cancelled = uniqueId('list');
    const deleted = uniqueId('list');
    await createJob(hub, { id: counted, owner: 'alice' });
    await createJob(hub, { id: cancelled, owner: 'alice' });
    await createJob(hub, { id: deleted, owner: 'alice' });
    const page = await openDashboard('alice');
    await waitFor(async () => Object.keys((await seed4(page)).jobProgress).length === 3, 'three jobs');

    await report(hub, counted, {
      kind: 'progress',
      current: 1,
      total: 4,
      unit: 'videos',
      message: 'Processing video 1/4',
    });
    const one = await waitFor(
      async () => ((await entry(page, counted))?.current_video === 1 ? entry(page, counted) : undefined),
      'video 1',
    );
    expect(one).toMatchObject({
      status: 'processing',
      progress: 25,
      total_videos: 4,
      message: 'Processing video 1/4',
    });
    await report(hub, counted, { kind: 'failed', error: { message: 'quota exceeded' } });
    const failed = await waitFor(
      async () => ((await entry(page, counted))?.status === 'failed' ? entry(page, counted) : undefined),
      'the failure',
    );
    expect(failed).toMatchObject({
      error: 'quota exceeded',
      message: 'Failed: quota exceeded',
      progress: 25,
    });

    // A user's cancel: the queued job is cancelled at once.
    expect((await hub.post(`/v1/jobs/${cancelled}/cancel`, {}, await hub.token('alice'))).status).toBe(200);
    await waitFor(async () => (await entry(page, cancelled))?.status === 'cancelled', 'the cancel');
    // A deleted job is announced as cancelled, as the seed's worker does.
    expect((await hub.request('DELETE', `/v1/jobs/${deleted}`)).status).toBe(204);
    await waitFor(async () => (await entry(page, deleted))?.status === 'cancelled', 'the deletion');
  });

  it('closes with 1008 for a missing, invalid or user-less token; 1013 past five connections', async () => {
    hub = await startHub();
    const url = `${wsBase(hub)}/api/ws/progress`;
    for (const query of ['', '?token=null', '?token=wrong', `?token=${hub.apiKey}`]) {
      const client = await connect(`${url}${query}`);
      clients.push(client);
      expect((await client.closed).code, query).toBe(1008);
    }
    const token = await hub.token('carol');
    await createJob(hub, { id: uniqueId('list'), owner: 'carol' });
    for (let i = 0; i < 5; i++) {
      const client = await connect(`${url}?token=${token}`);
      clients.push(client);
      // Admitted once the active job arrives: the next one is counted after it.
      await waitFor(() => client.received.length > 0, 'the admitted connection');
    }
    const sixth = await connect(`${url}?token=${token}`);
    clients.push(sixth);
    expect((await sixth.closed).code).toBe(1013);
    // The five are still open.
    for (const c of clients.slice(-6, -1)) expect(c.ws.readyState).toBe(c.ws.OPEN);
  });

  it('serves the history only to the owner, after a valid time', async () => {
    hub = await startHub();
    const job = uniqueId('list');
    await createJob(hub, { id: job, owner: 'alice' });
    await report(hub, job, { kind: 'progress', current: 1, total: 2, unit: 'videos' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const middle = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await report(hub, job, { kind: 'progress', current: 2, unit: 'videos' }, { kind: 'completed' });
    const alice = await hub.token('alice');

    const all = await hub.get<Update[]>(`/api/jobs/${job}/progress-history`, alice);
    expect(all.status).toBe(200);
    expect(all.body.map((e) => [e.status, e.current_video])).toEqual([
      ['pending', 0],
      ['processing', 1],
      ['processing', 2],
      ['completed', 2],
    ]);
    expect(all.body[1]).toEqual({
      job_id: job,
      status: 'processing',
      progress: 50,
      current_video: 1,
      total_videos: 2,
      message: '',
      error: null,
      timestamp: Date.parse(all.body[1]!.created_at),
      created_at: expect.any(String),
    });
    const later = await hub.get<Update[]>(
      `/api/jobs/${job}/progress-history?since=${encodeURIComponent(middle)}`,
      alice,
    );
    expect(later.body.map((e) => e.current_video)).toEqual([2, 2]);

    expect((await hub.get(`/api/jobs/${job}/progress-history`, null)).status).toBe(401);
    const bob = await hub.get<{ error: { code: string } }>(
      `/api/jobs/${job}/progress-history`,
      await hub.token('bob'),
    );
    expect(bob.status).toBe(404);
    expect(bob.body.error.code).toBe(ErrorCode.NOT_FOUND);
    const bad = await hub.get<{ error: { code: string } }>(
      `/api/jobs/${job}/progress-history?since=yesterday`,
      alice,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe(ErrorCode.INVALID_VALUE);
  });
});
