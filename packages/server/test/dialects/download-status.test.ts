/**
 * download-status (seed 3) in Chromium: the seed's `useWebSocket(jobId)` hook
 * (its effect, in plain browser JavaScript) with its 30 s text `ping`, its
 * automatic reconnection (on any close but 1000) and its `/api/status/{jobId}`
 * polling, against a real hub. The seed's client has no credential: only public
 * jobs are served. Timings are scaled down.
 */

import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { appHtml, browserSuite, createJob, portOf, report, uniqueId, wsBase } from './helpers.js';

/** The 30 s keep-alive becomes 300 ms; the 1 s, 2 s … reconnect delays 100 ms, 200 ms … */
const PING_SCALE = 0.01;
const RECONNECT_SCALE = 0.1;

// biome-ignore lint/suspicious/noExplicitAny: statuses are checked by the assertions.
type Status = Record<string, any>;

interface App {
  status: Status | null;
  isConnected: boolean;
  raw: string[];
  closes: number[];
  reconnects: number[];
  watch(jobId: string): void;
  poll(jobId: string): Promise<{ httpStatus: number; body: Status }>;
}

declare global {
  interface Window {
    seed3: App;
  }
}

const CLIENT = `
const app = (window.seed3 = { status: null, isConnected: false, raw: [], closes: [], reconnects: [] });
let reconnectAttempts = 0;
const maxReconnectAttempts = 5;

// useWebSocket(jobId): the hook's effect, with the guide's keep-alive and reconnection.
app.watch = (jobId) => {
  const ws = new WebSocket(\`\${CONFIG.ws}/ws/download/\${jobId}\`);
  const closed = (event) => {
    app.isConnected = false;
    app.closes.push(event.code);
    if (event.code !== 1000 && reconnectAttempts < maxReconnectAttempts) {
      const delay = Math.min(1000 * Math.pow(2, reconnectAttempts), 30000) * CONFIG.reconnectScale;
      app.reconnects.push(delay);
      setTimeout(() => {
        reconnectAttempts++;
        app.watch(jobId);
      }, delay);
    }
  };
  ws.onopen = () => {
    app.isConnected = true;
    reconnectAttempts = 0;
    const pingInterval = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send('ping');
    }, 30000 * CONFIG.pingScale);
    ws.onclose = (event) => {
      clearInterval(pingInterval);
      closed(event);
    };
  };
  ws.onmessage = (event) => {
    app.raw.push(event.data);
    const message = JSON.parse(event.data);
    if (message.type === 'status') app.status = message.data;
  };
  ws.onclose = closed;
};

// The polling the guide migrates from.
app.poll = async (jobId) => {
  const response = await fetch(\`/api/status/\${jobId}\`);
  return { httpStatus: response.status, body: await response.json() };
};
`;

describe('download-status (seed 3)', () => {
  let hub: TestHub;
  const browser = browserSuite(() => hub);

  async function openApp(): Promise<Page> {
    const config = { ws: wsBase(hub), pingScale: PING_SCALE, reconnectScale: RECONNECT_SCALE };
    const page = await browser.open(appHtml(config, CLIENT), hub.url);
    return page;
  }
  const seed3 = (page: Page) => page.evaluate(() => window.seed3);

  it('follows a public download through a hub restart to its download URL', async () => {
    hub = await startHub();
    const job = uniqueId('dl');
    await createJob(hub, { id: job, owner: 'alice', public: true });
    const page = await openApp();
    await page.evaluate((id) => window.seed3.watch(id), job);
    // The current status comes at once.
    await waitFor(async () => (await seed3(page)).status, 'the current status');
    expect((await seed3(page)).status).toEqual({ jobId: job, status: 'queued', progress: 0 });

    const videoInfo = {
      id: 'dQw4w9WgXcQ',
      title: 'Video Title',
      thumbnail: 'https://i.example.com/t.jpg',
      duration: 60,
      quality: '1080p',
    };
    await report(hub, job, { kind: 'progress', percent: 5, message: 'Starting to process' });
    await report(hub, job, { kind: 'metadata', metadata: { videoInfo } }, { kind: 'progress', percent: 10 });
    await report(hub, job, { kind: 'progress', percent: 45 });
    const downloading = await waitFor(
      async () => ((await seed3(page)).status?.progress === 45 ? (await seed3(page)).status : undefined),
      'progress with the video info',
    );
    expect(downloading).toEqual({ jobId: job, status: 'processing', progress: 45, videoInfo });

    // The text keep-alive is answered with exactly {"type":"pong"}.
    await waitFor(async () => (await seed3(page)).raw.includes('{"type":"pong"}'), 'a pong');

    // The hub restarts: the client reconnects (its close was not 1000) and gets the status at once.
    hub = await hub.restart({ port: portOf(hub) });
    await report(hub, job, { kind: 'progress', percent: 90 });
    await waitFor(async () => (await seed3(page)).status?.progress === 90, 'the status after the restart');
    const { closes, reconnects } = await seed3(page);
    // 1001 from the restart, then 1006 for any attempt made while the hub was down.
    expect(closes[0]).toBe(1001);
    for (const code of closes.slice(1)) expect(code).toBe(1006);
    expect(reconnects[0]).toBe(1000 * RECONNECT_SCALE);

    await report(hub, job, { kind: 'progress', percent: 98 });
    await report(hub, job, {
      kind: 'completed',
      result: {
        downloadUrl: 'https://storage.example.com/v.mp4',
        storageProvider: 'gcs',
        fileSize: 52428800,
      },
    });
    const done = await waitFor(
      async () =>
        (await seed3(page)).status?.status === 'completed' ? (await seed3(page)).status : undefined,
      'completion',
    );
    expect(done).toEqual({
      jobId: job,
      status: 'completed',
      progress: 100,
      videoInfo,
      downloadUrl: 'https://storage.example.com/v.mp4',
      storageProvider: 'gcs',
      fileSize: 52428800,
    });
    // The same data over REST.
    expect(await page.evaluate((id) => window.seed3.poll(id), job)).toEqual({ httpStatus: 200, body: done });
  });

  it('reports failed and cancelled downloads as failed, with the error', async () => {
    hub = await startHub();
    const failing = uniqueId('dl');
    const cancelled = uniqueId('dl');
    await createJob(hub, { id: failing, owner: 'alice', public: true });
    await createJob(hub, { id: cancelled, owner: 'alice', public: true });
    const page = await openApp();
    await page.evaluate((id) => window.seed3.watch(id), failing);
    await waitFor(async () => (await seed3(page)).status, 'the current status');
    await report(hub, failing, { kind: 'progress', percent: 30 });
    await report(hub, failing, { kind: 'failed', error: { message: 'Video unavailable' } });
    const failed = await waitFor(
      async () => ((await seed3(page)).status?.status === 'failed' ? (await seed3(page)).status : undefined),
      'the failure',
    );
    expect(failed).toEqual({ jobId: failing, status: 'failed', progress: 30, error: 'Video unavailable' });

    const cancel = await hub.post(`/v1/jobs/${cancelled}/cancel`, {}, await hub.token('alice'));
    expect(cancel.status).toBe(200);
    expect(await page.evaluate((id) => window.seed3.poll(id), cancelled)).toEqual({
      httpStatus: 200,
      body: { jobId: cancelled, status: 'failed', progress: 0, error: 'cancelled' },
    });
  });

  it('answers a job that is not public exactly like a missing one, and the client stops', async () => {
    hub = await startHub();
    const hidden = uniqueId('dl');
    await createJob(hub, { id: hidden, owner: 'alice' });
    const page = await openApp();
    const answer = async (id: string) => {
      await page.evaluate((jobId) => {
        window.seed3.status = null;
        window.seed3.closes = [];
        window.seed3.watch(jobId);
      }, id);
      await waitFor(async () => (await seed3(page)).closes.length > 0, 'the close');
      return seed3(page);
    };
    const private_ = await answer(hidden);
    expect(private_.status).toEqual({ jobId: hidden, status: 'failed', progress: 0, error: 'job not found' });
    expect(private_.closes).toEqual([1000]);
    const missing = await answer('no-such-download');
    expect(missing.status).toEqual({ ...private_.status, jobId: 'no-such-download' });
    expect(missing.closes).toEqual([1000]);
    // Closed with 1000: the client does not reconnect.
    expect(missing.reconnects).toEqual([]);

    const poll = (id: string) => page.evaluate((jobId) => window.seed3.poll(jobId), id);
    const hiddenPoll = await poll(hidden);
    const missingPoll = await poll('no-such-download');
    expect(hiddenPoll.httpStatus).toBe(404);
    expect(missingPoll.httpStatus).toBe(404);
    expect(hiddenPoll.body.error.code).toBe(missingPoll.body.error.code);
  });
});
