/**
 * Shared tabs in real Chromium: two tabs of one origin share one connection,
 * and when the leader's tab closes the other takes over without losing an event.
 */

import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
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

beforeAll(async () => {
  if (chromium.skip) return;
  pages = await servePage(await bundle(new URL('./pages/tabs.ts', import.meta.url).pathname));
  browser = await launch();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
});

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.skipIf(chromium.skip)(chromium.title('shared tabs (Chromium)'), () => {
  let hub: TestHub;
  afterAll(async () => hub?.close());

  it('shares one connection between two tabs and hands over when the leader closes', async () => {
    hub = await startHub();
    const job = `tabs-${process.pid}`;
    await hub.server.hub.createJob({ id: job, owner: 'alice', name: job });
    const query = new URLSearchParams({ hub: hub.url, token: await hub.token('alice'), job });
    const url = `${pages.url}/?${query}`;
    const connections = () => hub.server.context.connections.count('alice');
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) await hub.server.hub.publish(job, [{ kind: 'progress', percent: i }]);
    };

    const leader = await browser.context.newPage();
    await leader.goto(url);
    await leader.waitForFunction(() => window.hw.client.state === 'connected');
    const follower = await browser.context.newPage();
    await follower.goto(url);
    await follower.waitForFunction(() => window.hw.client.state === 'connected');
    // The follower waits in the queue for the group's Web Lock, which the leader holds
    // (the group lock is the one each tab's own lock is named under): it connects only
    // once it leads, so the one connection is the leader's.
    await follower.waitForFunction(async () => {
      const { held = [], pending = [] } = await navigator.locks.query();
      return pending.some(
        (p) => held.some((h) => h.name === p.name) && held.some((h) => h.name!.startsWith(`${p.name}/`)),
      );
    });
    expect(connections()).toBe(1);
    expect(await follower.evaluate(() => window.hw.client.transport)).toBe('ws');

    await publish(5);
    for (const page of [leader, follower]) {
      await page.waitForFunction(() => window.hw.seqs.length === 5);
    }
    expect(await follower.evaluate(() => window.hw.seqs)).toEqual(range(2, 6));
    // Collections are shared too: a new job of the user reaches both tabs.
    const added = `${job}-new`;
    await hub.server.hub.createJob({ id: added, owner: 'alice', name: added });
    for (const page of [leader, follower]) {
      await page.waitForFunction((id) => window.hw.jobs.get(id) !== undefined, added);
    }
    expect(await follower.evaluate(() => window.hw.jobs.size)).toBe(2);

    // The leader's tab closes while events keep coming: the follower takes over.
    await leader.close();
    await publish(5);
    await waitFor(() => connections() === 1, 'connections() === 1', 15_000);
    await publish(5);
    await follower.waitForFunction(() => window.hw.seqs.length === 15, undefined, { timeout: 15_000 });
    expect(await follower.evaluate(() => window.hw.seqs)).toEqual(range(2, 16));
    expect(await follower.evaluate(() => window.hw.client.state)).toBe('connected');
    expect(connections()).toBe(1);

    // A tab that joins now follows the new leader and starts from the current state.
    const late = await browser.context.newPage();
    await late.goto(url);
    await late.waitForFunction(() => window.hw.client.state === 'connected');
    await publish(1);
    await late.waitForFunction(() => window.hw.seqs.length === 1);
    expect(await late.evaluate(() => window.hw.seqs)).toEqual([17]);
    expect(connections()).toBe(1);
    await late.close();
    await follower.close();
  });
});
