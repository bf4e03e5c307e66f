/**
 * The examples run: each example's back end (a child process, on a free port)
 * against a real hub, its front end in Chromium, its worker to the end of a job.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { type Browser, launch } from '@headway/test-helpers/browser';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Each example, the button that starts a job, and what its page shows once the job has ended. */
const EXAMPLES: [name: string, button: string, ended: (page: Page) => Promise<boolean>][] = [
  ['user-progress', '#start', async (p) => (await p.textContent('#stage')) === 'Stage: completed'],
  ['task-subscribe', '#start', async (p) => (await p.textContent('#result'))?.startsWith('Done in') ?? false],
  ['job-stream', '#start', async (p) => (await p.textContent('#status')) === 'Status: completed'],
  ['download-status', '#start', async (p) => (await p.textContent('#result'))?.includes('on gcs') ?? false],
  [
    'user-dashboard',
    '#import',
    async (p) => /10\/10 videos\s*failed/.test((await p.textContent('#dashboard')) ?? ''),
  ],
];

/** Start an example's back end on a free port; resolves with its URL once it listens. */
function startExample(name: string, hub: TestHub): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [`examples/${name}/server.mjs`], {
    cwd: ROOT,
    env: { ...process.env, HEADWAY_URL: hub.url, HEADWAY_API_KEY: hub.apiKey, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let errors = '';
  child.stderr!.on('data', (d) => (errors += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const url = /front end: (http:\/\/\S+)/.exec(out)?.[1];
      if (url) resolve({ url, child });
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${errors}`)));
  });
}

describe('examples', () => {
  let hub: TestHub;
  let browser: Browser;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    [hub, browser] = await Promise.all([startHub(), launch()]);
  });
  afterAll(async () => {
    for (const child of children) child.kill();
    await browser?.close();
    await hub?.close();
  });

  it('each example follows a job to its end through its seed protocol', async () => {
    await Promise.all(
      EXAMPLES.map(async ([name, button, ended]) => {
        const { url, child } = await startExample(name, hub);
        children.push(child);
        const page = await browser.context.newPage();
        await page.goto(url);
        await page.click(button);
        await waitFor(() => ended(page), `the end of the ${name} job`, 30_000);
      }),
    );
    expect(children).toHaveLength(EXAMPLES.length);
  }, 45_000);
});
