/**
 * The dashboard in real Chromium, served by a hub running the demo workers:
 * progress moves in the jobs view; a job is opened and cancelled and its worker
 * stops; a reload shows the state again at once; offline and back, the job
 * catches up with every event. Saves the screenshots used in the README.
 *
 * The dashboard is built (Vite's JS API) when its `dist` is missing or older
 * than its sources; the build goes to a scratch directory inside `dist` and its
 * files are moved in one by one, `index.html` last, so that a hub serving the
 * old build meanwhile never sees a half-written one.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobEvent, JobState } from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { type Browser, launch, requireChromium } from '@headway/test-helpers/browser';
import type { Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoHandle, startDemo } from '../../../packages/server/src/demo/index.js';

const app = fileURLToPath(new URL('..', import.meta.url));
const repo = join(app, '..', '..');
const dist = join(app, 'dist');
const images = join(repo, 'docs', 'images');
/** What the build is made from: newer than `dist/index.html` means stale. */
const SOURCES = [
  join(app, 'src'),
  join(app, 'public'),
  join(app, 'index.html'),
  join(app, 'vite.config.ts'),
  join(repo, 'packages', 'client', 'src'),
  join(repo, 'packages', 'react', 'src'),
  join(repo, 'packages', 'protocol', 'src'),
];
/** Demo pace: a media job takes 10–30 s, long enough to open and cancel, short enough to see move. */
const DEMO_SPEED = 3;
const VIEWPORT = { width: 1280, height: 800 };

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function moveTree(from: string, to: string, skip: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.name === skip) continue;
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) {
      mkdirSync(target, { recursive: true });
      moveTree(source, target, skip);
    } else {
      renameSync(source, target);
    }
  }
}

async function buildIfStale(): Promise<void> {
  const index = join(dist, 'index.html');
  const built = existsSync(index) ? statSync(index).mtimeMs : 0;
  if (built > Math.max(...SOURCES.map(newestMtime))) return;
  const scratch = join(dist, `.build-${process.pid}`);
  // Vitest sets NODE_ENV=test, which would make Vite bundle React's development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({
      configFile: join(app, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: scratch, emptyOutDir: true },
    });
    moveTree(scratch, dist, 'index.html');
    renameSync(join(scratch, 'index.html'), index);
  } finally {
    process.env.NODE_ENV = nodeEnv;
    rmSync(scratch, { recursive: true, force: true });
  }
}

declare global {
  interface Window {
    /** Notifications the page showed (recorded by the test's stand-in for `Notification`). */
    shown: { title: string; body?: string }[];
  }
}

const chromium = requireChromium();
let hub: TestHub;
let demo: DemoHandle | undefined;
let browser: Browser;
let page: Page;
let adminToken: string;

beforeAll(async () => {
  await buildIfStale();
  hub = await startHub();
  adminToken = await hub.token('admin', { admin: true });
  if (chromium.skip) return;
  demo = startDemo({ url: hub.url, apiKey: hub.apiKey, owner: 'demo', speed: DEMO_SPEED });
  browser = await launch();
  page = await browser.context.newPage();
  await page.setViewportSize(VIEWPORT);
}, 60_000);

afterAll(async () => {
  await demo?.stop();
  await browser?.close();
  await hub?.close();
});

async function getJob(id: string): Promise<JobState> {
  return (await hub.get<JobState>(`/v1/jobs/${id}`)).body;
}

async function history(id: string): Promise<JobEvent[]> {
  return (await hub.get<{ events: JobEvent[] }>(`/v1/jobs/${id}/events?since=0&limit=1000`)).body.events;
}

/** The seqs of the job view's event log, newest first. */
function shownSeqs(): Promise<number[]> {
  return page.$$eval('.log tr[data-seq]', (rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
}

const percentOf = (id: string) =>
  page.getAttribute(`.job-row[data-job-id="${id}"] [role=progressbar]`, 'aria-valuenow').then(Number);

describe('serving the dashboard', () => {
  it('serves the page for client routes, long-cached hashed assets, and keeps API 404s as JSON', async () => {
    for (const path of ['/', '/jobs/anything', '/system']) {
      const res = await fetch(`${hub.url}${path}`, { headers: { accept: 'text/html' } });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    }
    const html = await (await fetch(`${hub.url}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${hub.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');

    for (const [path, accept] of [
      ['/v1/nothing', 'text/html'],
      ['/nothing', 'application/json'],
      ['/assets/missing.js', '*/*'],
      ['/assets/..%2f..%2fpackage.json', '*/*'],
      ['/.build-1/index.html', '*/*'],
    ]) {
      const res = await fetch(`${hub.url}${path}`, { headers: { accept } });
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('HW_ERR_NOT_FOUND');
    }
  });

  it('answers / with how to build the dashboard when it is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'headway-no-dashboard-'));
    const bare = await startHub({ dashboardDir: empty });
    try {
      const res = await fetch(`${bare.url}/`, { headers: { accept: 'text/html' } });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('npm run build');
      expect((await bare.get('/healthz', null)).status).toBe(200);
    } finally {
      await bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('serves GET /v1/stats to API keys and admin tokens only', async () => {
    const stats = await hub.get<Record<string, unknown>>('/v1/stats');
    expect(stats.status).toBe(200);
    expect(stats.body).toMatchObject({
      connections: { total: expect.any(Number) },
      subscriptions: expect.any(Number),
      events: { ingested: expect.any(Number), dispatched: expect.any(Number) },
      store: { kind: 'sqlite', status: 'ok' },
      bus: { kind: 'memory', shared: false, status: 'ok' },
    });
    expect((await hub.get('/v1/stats', adminToken)).status).toBe(200);
    const user = await hub.get<{ error: { code: string } }>('/v1/stats', await hub.token('alice'));
    expect(user).toMatchObject({ status: 403, body: { error: { code: 'HW_ERR_FORBIDDEN' } } });
    const anonymous = await hub.get<{ error: { code: string } }>('/v1/stats', null);
    expect(anonymous).toMatchObject({ status: 401, body: { error: { code: 'HW_ERR_UNAUTHORIZED' } } });
  });
});

describe.skipIf(chromium.skip)(chromium.title('the dashboard in Chromium'), () => {
  it('logs in from the link, then shows the demo jobs with their progress advancing', async () => {
    await page.goto(`${hub.url}/#token=${adminToken}`);
    // The token left the address bar and stays in this tab only.
    await page.waitForFunction(() => location.hash === '');
    expect(await page.evaluate(() => sessionStorage.getItem('headway.token'))).toBe(adminToken);
    await page.waitForSelector('.connection[data-state="connected"]');

    const row = await page.waitForSelector('.job-row[data-status="running"][data-depth="0"]');
    const id = (await row.getAttribute('data-job-id'))!;
    const before = await percentOf(id);
    await waitFor(async () => (await percentOf(id)) > before, `progress of ${id} to pass ${before}%`, 15_000);
    // Rate, time left and last update are shown for running jobs.
    expect(await page.textContent(`.job-row[data-job-id="${id}"] .job-row__updated`)).not.toBe('');

    // Keyboard: arrows move between rows, Enter opens one.
    const focusedJob = () =>
      page.evaluate(() => document.activeElement?.closest('.job-row')?.getAttribute('data-job-id') ?? null);
    await page.focus('.vlist [data-index="0"] [data-row-focus]');
    const first = await focusedJob();
    await page.keyboard.press('ArrowDown');
    const second = await focusedJob();
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`.job-view[data-job-id="${second}"]`);
    await page.goBack();
    await page.waitForSelector('.job-table');

    // A running batch, some of its items done, expands into them; then the picture for the README.
    const batch = await waitFor(
      async () => {
        for (const row of await page.$$('.job-row[data-status="running"][data-depth="0"]')) {
          const toggle = await row.$('button[aria-expanded="false"]');
          const percent = Number(await (await row.$('[role=progressbar]'))?.getAttribute('aria-valuenow'));
          if (toggle && percent >= 20) return row.getAttribute('data-job-id');
        }
        return null;
      },
      'a running batch past 20%',
      30_000,
    );
    await page.click(`.job-row[data-job-id="${batch}"] button[aria-expanded="false"]`);
    await page.waitForSelector('.job-row[data-depth="1"]');
    await waitFor(
      async () => (await page.$$('.job-row[data-depth="0"]')).length >= 5,
      'five jobs in the list',
      15_000,
    );
    mkdirSync(images, { recursive: true });
    await page.mouse.move(0, VIEWPORT.height - 1);
    await page.screenshot({ path: join(images, 'dashboard-jobs.png') });
  }, 45_000);

  it('opens a running job and cancels it: the hub acknowledges, the worker stops, the view says cancelled', async () => {
    // The running media job with the most left to do, one that has just begun: the
    // demo runs three times faster, and on a busy machine a job further on can
    // finish before the view, its screenshot and the dialog are done.
    const id = await waitFor(
      async () => {
        const rows = await page.$$eval('.job-row[data-status="running"][data-depth="0"]', (els) =>
          els.map((el) => ({
            id: el.getAttribute('data-job-id')!,
            percent: Number(el.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') ?? 100),
          })),
        );
        const media = rows.filter((r) => r.id.startsWith('media-') && r.percent < 20);
        return media.sort((a, b) => a.percent - b.percent)[0]?.id;
      },
      'a running media job under 20%',
      25_000,
    );
    await page.click(`.job-row[data-job-id="${id}"] [data-row-focus]`);
    await page.waitForSelector(`.job-view[data-job-id="${id}"]`);
    await page.waitForSelector('.log tr[data-seq]');
    await page.waitForSelector('.timeline__stage[data-state="current"]');
    await page.screenshot({ path: join(images, 'dashboard-job.png') });

    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel job' }).click();
    await page.waitForSelector('.controls__ack[data-phase="acknowledged"]');
    await page.waitForSelector(`.job-view[data-job-id="${id}"][data-status="cancelled"]`);
    expect(await page.textContent('.job-view__header .status__text')).toBe('cancelled');

    // The worker acknowledged the cancel and reported nothing after it.
    expect((await getJob(id)).status).toBe('cancelled');
    const kinds = (await history(id)).map((e) => e.kind);
    expect(kinds.at(-1)).toBe('cancelled');
    expect(kinds.indexOf('cancel_requested')).toBeGreaterThan(0);
    // The live log got both, newest first.
    await waitFor(
      async () => (await shownSeqs())[0] === kinds.length,
      'the cancelled event in the log',
      15_000,
    );
    expect(await page.textContent('.log tr[data-seq]:first-child .log__kind')).toBe('cancelled');
    // The stage the job was in when it stopped is marked cancelled, not done; later ones did not run.
    const stages = await page.$$eval('.timeline__stage', (els) =>
      els.map((el) => ({
        state: el.getAttribute('data-state'),
        words: el.querySelector('.timeline__state')?.textContent ?? '',
      })),
    );
    const stopped = stages.findIndex((s) => s.state === 'cancelled');
    expect(stopped).toBeGreaterThanOrEqual(0);
    expect(stages[stopped]!.words).toMatch(/^cancelled( at \d+%)?$/);
    expect(stages.slice(0, stopped).every((s) => s.state === 'done')).toBe(true);
    expect(stages.slice(stopped + 1).every((s) => s.state === 'skipped')).toBe(true);
  }, 60_000);

  it('shows the state again at once after a reload mid-job, and catches up after going offline', async () => {
    // A job driven from here, so that events happen exactly while the page is offline.
    const id = `e2e-${process.pid}-${Date.now()}`;
    await hub.post('/v1/jobs', {
      id,
      owner: 'demo',
      name: 'Transcode e2e.mp4',
      stages: [{ name: 'download' }, { name: 'transcode', weight: 3 }],
    });
    let step = 0;
    const report = async (n: number) => {
      for (let i = 0; i < n; i++) {
        step++;
        const events = step === 1 ? [{ kind: 'stage', name: 'download' }] : [];
        await hub.post(`/v1/jobs/${id}/events`, {
          events: [...events, { kind: 'progress', percent: Math.min(99, step), message: `step ${step}` }],
        });
      }
    };
    await report(10);
    // Notifications, recorded: the page sees a granted permission and a constructor that notes each one.
    await page.addInitScript(() => {
      window.shown = [];
      class RecordedNotification {
        static permission = 'granted';
        static requestPermission = async () => 'granted';
        onclick: (() => void) | null = null;
        constructor(title: string, options?: { body?: string }) {
          window.shown.push({ title, body: options?.body });
        }
        close() {}
      }
      Object.defineProperty(window, 'Notification', { value: RecordedNotification, configurable: true });
    });
    await page.goto(`${hub.url}/jobs/${id}`);
    await page.waitForSelector(`.job-view[data-job-id="${id}"][data-status="running"]`);

    // Reload mid-job: no login, and the current state is there as soon as the page is.
    await report(5);
    const seqBefore = (await getJob(id)).seq;
    await page.reload();
    await page.waitForSelector(`.job-view[data-job-id="${id}"] .job-view__seq`);
    expect(Number(await page.textContent('.job-view__seq'))).toBe(seqBefore);
    expect(await page.$('.login')).toBeNull();

    // Offline: the indicator says so; events keep happening on the hub.
    await page.waitForSelector('.connection[data-state="connected"]');
    await browser.context.setOffline(true);
    await page.waitForSelector('.connection[data-state="offline"]');
    await report(20);
    await browser.context.setOffline(false);
    await page.waitForSelector('.connection[data-state="connected"]');
    const seqAfter = (await getJob(id)).seq;
    await waitFor(
      async () => Number(await page.textContent('.job-view__seq')) === seqAfter,
      'the job view to catch up',
      15_000,
    );
    // Every event, once, in order: the log equals the history endpoint's.
    const expected = (await history(id)).map((e) => e.seq).reverse();
    await waitFor(async () => (await shownSeqs()).length === expected.length, 'the whole log', 15_000);
    expect(await shownSeqs()).toEqual(expected);
    expect(await page.textContent('.job-view__percent')).toBe(
      `${Math.floor((await getJob(id)).progress.percent)}%`,
    );

    // Opt in to notifications, then the job completes: one notification says so.
    await page.getByRole('button', { name: 'Notifications off' }).click();
    await page.waitForSelector('button[aria-pressed="true"]');
    const url = 'https://cdn.example.com/e2e.m3u8';
    await hub.post(`/v1/jobs/${id}/events`, { events: [{ kind: 'completed', result: { url } }] });
    await page.waitForSelector(`.job-view[data-job-id="${id}"][data-status="completed"]`);
    // The demo's own jobs may finish meanwhile and notify too: look at this job's.
    const shown = await waitFor(
      () =>
        page.evaluate((body) => {
          const mine = window.shown.filter((n) => n.body === body);
          return mine.length > 0 ? mine : null;
        }, url),
      'a notification',
      15_000,
    );
    expect(shown).toEqual([{ title: 'Completed: Transcode e2e.mp4', body: url }]);
    await page.getByRole('button', { name: 'Notifications on' }).click();
  }, 45_000);

  it('returns to the token form when the token expires, and signs in with a pasted token', async () => {
    const tab = await browser.context.newPage();
    try {
      await tab.goto(`${hub.url}/#token=${await hub.token('demo', { ttl: 3 })}`);
      await tab.waitForSelector('.job-table');
      // When the token expires the page asks for a new one (the hub would close the connection too).
      await tab.waitForSelector('.login .notice', { timeout: 10_000 });
      expect(await tab.evaluate(() => sessionStorage.getItem('headway.token'))).toBeNull();
      await tab.fill('.login input', 'not-a-token');
      await tab.click('.login button[type=submit]');
      await tab.waitForSelector('.login [role=alert]');
      const token = await hub.token('demo');
      await tab.fill('.login input', token);
      await tab.click('.login button[type=submit]');
      await tab.waitForSelector('.job-table');
      await tab.waitForSelector('.connection[data-state="connected"]');
      expect(await tab.evaluate(() => sessionStorage.getItem('headway.token'))).toBe(token);
    } finally {
      await tab.close();
    }
  }, 30_000);

  it('shows the hub stats live in the system view, and switches themes', async () => {
    await page.click('nav >> text=System');
    await page.waitForSelector('[data-metric="connections"]');
    await waitFor(
      async () => Number(await page.textContent('[data-metric="connections"]')) >= 1,
      'this page among the connections',
      15_000,
    );
    await waitFor(
      async () => Number.parseFloat((await page.textContent('[data-metric="events-per-second"]')) ?? '') > 0,
      'events per second from the demo',
      15_000,
    );
    await page.selectOption('select:near(:text("Theme"))', 'dark');
    expect(await page.getAttribute('html', 'data-theme')).toBe('dark');
    await page.selectOption('select:near(:text("Theme"))', 'system');
    expect(await page.getAttribute('html', 'data-theme')).toBeNull();
  }, 30_000);
});

describe.skipIf(chromium.skip)(chromium.title('the dashboard reads well'), () => {
  beforeAll(async () => {
    await page.goto(`${hub.url}/#token=${adminToken}`);
    await page.waitForSelector('.connection[data-state="connected"]');
  });

  /** A job driven from here: stages, a byte count, then whatever `events` says. */
  async function drivenJob(name: string, events: Record<string, unknown>[]): Promise<string> {
    const id = `polish-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
    await hub.post('/v1/jobs', {
      id,
      owner: 'demo',
      name,
      stages: [{ name: 'download' }, { name: 'transcribe', weight: 3 }, { name: 'publish' }],
    });
    await hub.post(`/v1/jobs/${id}/events`, { events });
    return id;
  }

  it('writes sizes in binary units, one hour cycle, time left once, a fresh stage with a number, reasons in words', async () => {
    const id = await drivenJob('Polish check', [
      { kind: 'stage', name: 'download' },
      { kind: 'progress', current: 104_857_600, total: 209_715_200, unit: 'bytes' },
      { kind: 'stage', name: 'transcribe' },
    ]);
    await page.goto(`${hub.url}/jobs/${id}`);
    await page.waitForSelector(`.job-view[data-job-id="${id}"] .timeline__stage[data-state="current"]`);
    expect(await page.textContent('.log tr[data-kind="progress"] .log__data')).toBe(
      '50% · 100 MiB of 200 MiB',
    );
    // The stage that began a moment ago already shows how long it has run.
    expect(await page.textContent('.timeline__stage[data-state="current"] .timeline__duration')).toMatch(
      /^\d+(\.\d+)? (ms|s) so far$/,
    );
    // Times of day in the details, the timeline and the log share one form.
    const times = [
      await page.textContent('.facts dt:text-is("Created") + dd'),
      await page.textContent('.timeline__stage[data-state="done"] .timeline__started'),
      await page.textContent('.log tr[data-seq] .log__time'),
    ];
    const twelveHour = times.map((t) => /\b(AM|PM)\b/i.test(t ?? ''));
    expect(new Set(twelveHour).size, times.join(' | ')).toBe(1);

    // Cancelled with a reason: the log says who and why in words, the stage where it stopped says cancelled.
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // The page behind the dialog is dimmed.
    const backdrop = await page.$eval('dialog', (el) => getComputedStyle(el, '::backdrop').backgroundColor);
    expect(backdrop).toMatch(/^rgba\(0, 0, 0, 0\.[3-9]/);
    await dialog.getByLabel('Reason (optional)').fill('wrong file');
    await dialog.getByRole('button', { name: 'Cancel job' }).click();
    await page.waitForSelector('.controls__ack[data-phase="acknowledged"]');
    await hub.post(`/v1/jobs/${id}/events`, {
      events: [{ kind: 'cancelled', reason: 'stopped by the user' }],
    });
    await page.waitForSelector(`.job-view[data-job-id="${id}"][data-status="cancelled"]`);
    await page.waitForSelector('.log tr[data-kind="cancelled"]');
    expect(await page.textContent('.log tr[data-kind="cancelled"] .log__data')).toBe('stopped by the user');
    expect(await page.textContent('.log tr[data-kind="cancel_requested"] .log__data')).toBe(
      'by admin: wrong file',
    );
    expect(await page.getAttribute('.timeline__stage:nth-child(2)', 'data-state')).toBe('cancelled');
    expect(await page.getAttribute('.timeline__stage:nth-child(3)', 'data-state')).toBe('skipped');
  }, 20_000);

  it('says the time left once, where a label already says "Time left"', async () => {
    await page.goto(`${hub.url}/`);
    const row = await page.waitForSelector('.job-row[data-status="running"][data-depth="0"]');
    await page.click(`.job-row[data-job-id="${await row.getAttribute('data-job-id')}"] [data-row-focus]`);
    const eta = await waitForText('.facts dt:text-is("Time left") + dd');
    expect(eta).not.toMatch(/left/);
    expect(eta).toMatch(/^(a few seconds|less than a minute|under \d+ \w+|about \d+)/);
  }, 30_000);

  it("starts the system view's chart with the hub's last minute, not a sliver", async () => {
    // Readings the hub holds before the page asks (one a second): the first answer brings them all.
    const held = await waitFor(
      async () => {
        const { history } = (await hub.get('/v1/stats')).body as { history: unknown[] };
        return history.length >= 5 ? history.length : null;
      },
      'five readings of the hub',
      15_000,
    );
    await page.goto(`${hub.url}/system`);
    await page.waitForSelector('[data-metric="events-per-second"]');
    // A chart point is the rate between two readings.
    expect(Number(await page.getAttribute('.sparkline', 'data-count'))).toBeGreaterThanOrEqual(held - 1);
  }, 30_000);

  it('fits a short list to its rows instead of a tall empty box', async () => {
    const id = await drivenJob('Lonely job', [{ kind: 'progress', percent: 5 }]);
    await page.goto(`${hub.url}/?q=${id}`);
    await page.waitForSelector(`.job-row[data-job-id="${id}"]`);
    const table = await page.$eval('.job-table', (el) => el.getBoundingClientRect().height);
    expect(table).toBeLessThan(150);
  }, 30_000);

  it('lays the jobs and job views out for a phone (390 × 844), with no sideways scrolling', async () => {
    const phone = await browser.context.newPage();
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${hub.url}/#token=${adminToken}`);
      await phone.waitForSelector('.connection[data-state="connected"]');
      await waitFor(
        async () => (await phone.$$('.job-row[data-depth="0"]')).length >= 4,
        'four jobs in the list',
      );
      const overflow = () =>
        phone.evaluate(() => ({
          page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
          main: (() => {
            const main = document.querySelector('main')!;
            return main.scrollWidth - main.clientWidth;
          })(),
        }));
      expect(await overflow()).toEqual({ page: 0, main: 0 });
      // The bar is one line; its tools are behind the menu button.
      expect(await phone.$eval('.topbar', (el) => el.getBoundingClientRect().height)).toBeLessThan(60);
      expect(await phone.isVisible('.topbar__tools')).toBe(false);
      await phone.getByRole('button', { name: 'Menu' }).click();
      expect(await phone.isVisible('.topbar__tools')).toBe(true);
      expect(await overflow()).toEqual({ page: 0, main: 0 });
      await phone.getByRole('button', { name: 'Menu' }).click();
      // Cards: no column headers, and each name gets the width of the card.
      expect(await phone.isVisible('.job-row--head')).toBe(false);
      const names = await phone.$$eval('.job-row[data-depth="0"] .job-row__name a', (els) =>
        els.map((el) => ({
          name: el.textContent,
          width: el.getBoundingClientRect().width,
          cut: el.scrollHeight > el.clientHeight + 1,
        })),
      );
      // Each name has the card's whole width and wraps rather than ends in "…".
      for (const name of names) expect(name.width, name.name!).toBeGreaterThan(300);
      expect(names.filter((n) => n.cut)).toEqual([]);
      await phone.mouse.move(0, 843);
      await phone.screenshot({ path: join(images, 'dashboard-mobile.png') });

      // A media job: it has a stage plan, so its view has a timeline (a playlist import has none).
      const row = await phone.waitForSelector(
        '.job-row[data-status="running"][data-depth="0"][data-job-id^="media-"]',
      );
      await phone.click(`.job-row[data-job-id="${await row.getAttribute('data-job-id')}"] [data-row-focus]`);
      await phone.waitForSelector('.job-view .timeline__stage');
      await phone.waitForSelector('.log tr[data-seq]');
      expect(await overflow()).toEqual({ page: 0, main: 0 });
      await phone.screenshot({ path: join(images, 'dashboard-mobile-job.png') });
    } finally {
      await phone.close();
    }
  }, 45_000);
});

/** The text of an element once it has some. */
async function waitForText(selector: string): Promise<string> {
  return waitFor(
    async () => (await page.textContent(selector, { timeout: 15_000 }))?.trim() || undefined,
    selector,
  );
}

describe.skipIf(chromium.skip)(chromium.title('search and filters run on the hub'), () => {
  const owner = `searcher-${process.pid}`;
  const needle = `needle-${process.pid}`;
  const FAILED = 12;
  const OTHERS = 120;

  beforeAll(async () => {
    // The needle, then enough newer finished jobs to push it out of the live window (the latest 100).
    const create = async (id: string, extra: Record<string, unknown>, events: Record<string, unknown>[]) => {
      await hub.post('/v1/jobs', { id, owner, name: `Archive ${id}`, ...extra });
      if (events.length > 0) await hub.post(`/v1/jobs/${id}/events`, { events });
    };
    await create(needle, { name: 'Transcode the needle.mp4', kind: 'transcode' }, [{ kind: 'completed' }]);
    for (let i = 0; i < FAILED; i++) {
      await create(`${owner}-failed-${i}`, { kind: 'import' }, [
        { kind: 'failed', error: { code: 'E_TEST', message: 'failed on purpose' } },
      ]);
    }
    for (let i = 0; i < OTHERS; i++) {
      await create(`${owner}-done-${i}`, { kind: 'transcode' }, [{ kind: 'completed' }]);
    }
    await page.goto(`${hub.url}/#token=${adminToken}`);
    await page.waitForSelector('.connection[data-state="connected"]');
  }, 60_000);

  const shownIds = () =>
    page.$$eval('.job-row[data-job-id]', (els) => els.map((el) => el.getAttribute('data-job-id')));

  it('finds a job by id that the live list no longer holds', async () => {
    await page.goto(`${hub.url}/`);
    await page.waitForSelector('.job-row');
    expect(await page.$(`.job-row[data-job-id="${needle}"]`)).toBeNull();
    await page.fill('input[type=search]', needle);
    await page.waitForSelector(`.job-row[data-job-id="${needle}"]`);
    // By name and by owner too.
    await page.fill('input[type=search]', 'the NEEDLE');
    await page.waitForSelector(`.job-row[data-job-id="${needle}"]`);
    await page.fill('input[type=search]', '');
  }, 30_000);

  it('filters by status, owner and kind over every stored job, with counts per status', async () => {
    await page.goto(`${hub.url}/?owner=${owner}&status=failed`);
    await waitFor(async () => (await shownIds()).length === FAILED, `${FAILED} failed jobs`);
    const failedOption = await page.textContent('select option[value="failed"]');
    expect(failedOption).toBe(`failed (${FAILED})`);
    expect(await page.textContent('select option[value="completed"]')).toBe(`completed (${OTHERS + 1})`);
    expect(await page.textContent('.jobs-view__counts')).toContain(
      `0 active · ${FAILED + OTHERS + 1} finished`,
    );

    await page.goto(`${hub.url}/?owner=${owner}&kind=import`);
    await waitFor(async () => (await shownIds()).length === FAILED, `${FAILED} import jobs`);
  }, 30_000);

  it('pages through any number of jobs, and keeps the jobs on screen live', async () => {
    await page.goto(`${hub.url}/?owner=${owner}`);
    await waitFor(
      async () => (await page.getAttribute('.job-table', 'data-count')) === '100',
      'the first page',
    );
    await page.getByRole('button', { name: 'Show more jobs' }).click();
    await waitFor(
      async () => (await page.getAttribute('.job-table', 'data-count')) === String(FAILED + OTHERS + 1),
      'every job of the owner',
    );
    expect(await page.$('.jobs-view__more')).toBeNull();

    // A new job of the owner appears, and moves, without a reload.
    const id = `${owner}-live`;
    await hub.post('/v1/jobs', { id, owner, name: 'Live one', kind: 'import' });
    await page.waitForSelector(`.job-row[data-job-id="${id}"]`);
    await hub.post(`/v1/jobs/${id}/events`, { events: [{ kind: 'progress', percent: 37 }] });
    await waitFor(async () => (await percentOf(id)) === 37, 'the new job at 37%');
  }, 30_000);
});
