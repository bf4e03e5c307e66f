/**
 * A React page in real Chromium: `useJob` under StrictMode renders live
 * progress from a hub, batched per frame, with one subscription.
 */

import { startHub, type TestHub } from '@headway/test-helpers';
import {
  type Browser,
  bundle,
  launch,
  type PageServer,
  requireChromium,
  servePage,
} from '@headway/test-helpers/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const chromium = requireChromium();
let browser: Browser;
let pages: PageServer;
let hub: TestHub;

beforeAll(async () => {
  if (chromium.skip) return;
  pages = await servePage(await bundle(new URL('./pages/app.tsx', import.meta.url).pathname));
  browser = await launch();
  hub = await startHub();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await hub?.close();
});

describe.skipIf(chromium.skip)(chromium.title('useJob in Chromium'), () => {
  it('renders live progress with stage, percent, time left and the outcome', async () => {
    const job = `react-${process.pid}`;
    await hub.server.hub.createJob({
      id: job,
      owner: 'alice',
      name: 'Transcode lecture.mp4',
      stages: [{ name: 'download' }, { name: 'transcode', weight: 3 }],
    });
    const query = new URLSearchParams({ hub: hub.url, token: await hub.token('alice'), job });
    const page = await browser.context.newPage();
    await page.goto(`${pages.url}/?${query}`);
    const bar = page.locator('[role="progressbar"]');
    await page.waitForFunction(() => document.querySelector('h1')?.textContent === 'Transcode lecture.mp4');
    expect(await page.locator('#connection').textContent()).toBe('connected ws');

    const report = (events: Parameters<TestHub['server']['hub']['publish']>[1]) =>
      hub.server.hub.publish(job, events);
    await report([
      { kind: 'stage', name: 'download' },
      { kind: 'progress', percent: 50 },
    ]);
    await page.waitForFunction(
      () => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '12',
    );
    // A time left appears once the job has run for one rate sample, which the first report may not have reached.
    expect(await bar.getAttribute('aria-valuetext')).toMatch(
      /^download \(1 of 2\), 12%, (.+ left, )?running$/,
    );
    for (const percent of [10, 40, 70]) {
      await report([
        ...(percent === 10 ? [{ kind: 'stage' as const, name: 'transcode' }] : []),
        { kind: 'progress', percent },
      ]);
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.waitForFunction(
      () => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '77',
    );
    expect(await bar.getAttribute('aria-valuetext')).toMatch(/^transcode \(2 of 2\), 77%, .+ left, running$/);
    await report([{ kind: 'completed', result: { url: 'https://cdn.example/lecture.mp4' } }]);
    await page.waitForFunction(
      () => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '100',
    );
    expect(await bar.getAttribute('aria-valuetext')).toBe('transcode (2 of 2), 100%, completed');
    expect(await bar.getAttribute('data-status')).toBe('completed');

    const shown = await page.evaluate(() => window.shown);
    expect(shown[0]).toBe('loading');
    expect(shown.at(-1)).toBe('transcode (2 of 2), 100%, completed');
    // StrictMode mounted the hook twice; the hub still holds a single subscription for the page.
    const subscriptions = (await hub.server.context.metrics.subscriptions.get()).values[0]?.value;
    expect(subscriptions).toBe(1);
    expect(hub.server.context.connections.count('alice')).toBe(1);
    await page.close();
  });
});
