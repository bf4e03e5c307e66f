/**
 * user-progress (seed 0) in Chromium: the seed's browser client opens
 * `new WebSocket(`…/ws/${userId}`)` with no credential of its own and calls
 * `updateProgress(data.stage, data.progress, data.eta_seconds)` for each
 * message. The browser token travels in the HttpOnly session cookie, set by the
 * hub for a front end served from another port of the same host.
 */

import { connect, startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { describe, expect, it } from 'vitest';
import { appHtml, browserSuite, createJob, report, uniqueId, wsBase } from './helpers.js';

interface Update {
  stage: string;
  progress: number;
  eta: number | null;
}

/** What the test page exposes to the test. */
interface App {
  updates: Update[];
  closes: number[];
  ws: WebSocket;
  login(token: string): Promise<number>;
  connect(userId: string): Promise<'open' | 'error'>;
}

declare global {
  interface Window {
    seed0: App;
  }
}

/** The seed's front end: connect, and hand each message to `updateProgress`. */
const CLIENT = `
const app = (window.seed0 = { updates: [], closes: [] });
function updateProgress(stage, progress, eta) {
  app.updates.push({ stage, progress, eta });
}
app.login = async (token) => {
  const res = await fetch(CONFIG.hub + '/v1/session', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token },
    credentials: 'include',
  });
  return res.status;
};
app.connect = (userId) => {
  const ws = new WebSocket(\`\${CONFIG.ws}/ws/\${userId}\`);
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    updateProgress(data.stage, data.progress, data.eta_seconds);
  };
  ws.onclose = (event) => app.closes.push(event.code);
  app.ws = ws;
  return new Promise((resolve) => {
    ws.onopen = () => resolve('open');
    ws.onerror = () => resolve('error');
  });
};
`;

describe('user-progress (seed 0)', () => {
  let hub: TestHub;
  const browser = browserSuite(() => hub);

  /** The front end, on its own server: the same host as the hub, another port. */
  function openApp() {
    return browser.open(appHtml({ hub: hub.url, ws: wsBase(hub) }, CLIENT));
  }

  type Page = Awaited<ReturnType<typeof openApp>>;
  const updates = (page: Page) => page.evaluate(() => window.seed0.updates);
  const login = async (page: Page, user: string) =>
    page.evaluate((t) => window.seed0.login(t), await hub.token(user));
  const open = (page: Page, user: string) => page.evaluate((u) => window.seed0.connect(u), user);

  it('shows a whole job from the cookie-authenticated socket, again after a reload', async () => {
    hub = await startHub();
    const job = uniqueId('video');
    await createJob(hub, {
      id: job,
      owner: 'alice',
      stages: [{ name: 'transcription' }, { name: 'translation' }],
    });
    const page = await openApp();
    expect(await login(page, 'alice')).toBe(200);
    // HttpOnly: the page's script cannot read the token.
    expect(await page.evaluate(() => document.cookie)).not.toContain('headway_token');
    expect(await open(page, 'alice')).toBe('open');
    // The user's active job is sent at once.
    await waitFor(async () => (await updates(page)).find((u) => u.stage === 'queued'), 'the current state');

    await report(hub, job, { kind: 'stage', name: 'transcription' });
    await report(hub, job, { kind: 'progress', percent: 40 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await report(hub, job, { kind: 'progress', percent: 90 });
    const transcribing = await waitFor(
      async () => (await updates(page)).find((u) => u.stage === 'transcription' && u.progress === 45),
      'progress of the first stage',
    );
    expect(Number.isInteger(transcribing.eta)).toBe(true);

    // The seed's server reads keep-alive texts and ignores them.
    await page.evaluate(() => window.seed0.ws.send('ping'));
    await report(hub, job, { kind: 'stage', name: 'translation' });
    await waitFor(
      async () => (await updates(page)).find((u) => u.stage === 'translation'),
      'the stage change',
    );

    // A reload opens a new connection: the cookie is still there and the job's
    // current state comes first.
    await page.reload();
    expect(await open(page, 'alice')).toBe('open');
    const resumed = await waitFor(async () => (await updates(page))[0], 'the state after the reload');
    expect(resumed).toMatchObject({ stage: 'translation', progress: 50 });

    await report(hub, job, { kind: 'progress', percent: 50 });
    await report(hub, job, { kind: 'completed' });
    const done = await waitFor(
      async () => (await updates(page)).find((u) => u.stage === 'completed'),
      'completion',
    );
    expect(done).toEqual({ stage: 'completed', progress: 100, eta: null });
    expect(await page.evaluate(() => window.seed0.closes)).toEqual([]);
  });

  it('reports a failure', async () => {
    hub = await startHub();
    const job = uniqueId('video');
    await createJob(hub, { id: job, owner: 'alice' });
    const page = await openApp();
    await login(page, 'alice');
    await open(page, 'alice');
    await report(hub, job, { kind: 'stage', name: 'transcription' }, { kind: 'progress', percent: 20 });
    await report(hub, job, { kind: 'failed', error: { message: 'whisper crashed' } });
    const failed = await waitFor(
      async () => (await updates(page)).find((u) => u.stage === 'failed'),
      'the failure',
    );
    expect(failed).toEqual({ stage: 'failed', progress: 20, eta: null });
  });

  it('closes with 1008 without a cookie, and for another user', async () => {
    hub = await startHub();
    const page = await openApp();
    const connectTo = async (user: string) => {
      await page.evaluate(() => {
        window.seed0.closes = [];
      });
      await open(page, user);
      return waitFor(async () => (await page.evaluate(() => window.seed0.closes))[0], 'the close');
    };
    expect(await connectTo('alice')).toBe(1008);
    await login(page, 'bob');
    expect(await connectTo('alice')).toBe(1008);
  });

  it('takes ?token= too, and refuses a wrong one with 1008', async () => {
    hub = await startHub();
    const job = uniqueId('video');
    await createJob(hub, { id: job, owner: 'alice' });
    const ok = await connect(`${wsBase(hub)}/ws/alice?token=${await hub.token('alice')}`);
    try {
      await waitFor(
        () => (ok.received as unknown as { job_id?: string }[]).find((m) => m.job_id === job),
        'the job',
      );
    } finally {
      await ok.close();
    }
    const wrong = await connect(`${wsBase(hub)}/ws/alice?token=wrong`);
    expect((await wrong.closed).code).toBe(1008);
  });
});
