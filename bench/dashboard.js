#!/usr/bin/env node
/**
 * Dashboard load check (not part of the test suite): 1,000 active jobs, each
 * updating ten times a second (10,000 events/s through `POST /v1/events`),
 * watched by the dashboard in headless Chromium. It measures the page's frame
 * times (requestAnimationFrame deltas), long tasks and main-thread time, while
 * the jobs view sits at the top of the list and while it scrolls, and prints a
 * table (also to bench/results/dashboard.{md,json}).
 *
 *   npm run build && node bench/dashboard.js [--duration=<s per phase, default 10>] [--profile]
 *
 * --profile writes a CPU profile of the page during each loaded phase to
 * bench/results/profiles/dashboard-<phase>.cpuprofile (open it in Chrome DevTools).
 *
 * The hub is the real server in a child process (bench/hub-child.js) serving
 * the built dashboard (apps/dashboard/dist); Chromium is Debian's
 * (/usr/bin/chromium) driven by playwright-core, with a fresh profile.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startChild, stopAllChildren } from './lib/children.js';
import { createHttpClient, mapLimit } from './lib/http-client.js';
import { offerEvents } from './lib/load.js';
import { machineBusySeconds } from './lib/machine-load.js';
import { fmt } from './lib/report.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const resultsDir = join(root, 'bench', 'results');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const JOBS = 1_000;
const UPDATES_PER_JOB_PER_SECOND = 10;
/** Events per `POST /v1/events`: 100 requests a second for the whole load. */
const BATCH_SIZE = 100;
const MAX_IN_FLIGHT = 16;
/** Time for the page to learn every job before measuring, ms. */
const WARM_UP_MS = 4_000;
/** A frame at 60 Hz, ms; a delta over two of them means at least one frame was missed. */
const FRAME_MS = 1000 / 60;
/**
 * Goals: what "smooth" means here. rAF deltas come in whole vsync intervals
 * (16.7, 33.3, 50 ms …): p95 under 2.5 intervals means at most one missed frame.
 */
const GOAL_P95_MS = 2.5 * FRAME_MS;
const GOAL_LONGEST_TASK_MS = 200;

const { values: args } = parseArgs({
  options: { duration: { type: 'string', default: '10' }, profile: { type: 'boolean', default: false } },
});
const phaseSeconds = Number(args.duration);
if (!(phaseSeconds > 0)) {
  console.error('--duration must be a positive number of seconds');
  process.exit(1);
}
for (const [file, hint] of [
  [join(root, 'packages', 'server', 'dist', 'server.js'), 'npm run build'],
  [join(root, 'apps', 'dashboard', 'dist', 'index.html'), 'npm run build'],
  [CHROMIUM, 'apt-get install -y chromium'],
]) {
  if (!existsSync(file)) {
    console.error(`${file} is missing: ${hint}`);
    process.exit(1);
  }
}

const log = (...parts) => console.error(`[dashboard ${new Date().toISOString().slice(11, 19)}]`, ...parts);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const secret = randomBytes(32).toString('base64url');
const apiKey = `hw_bench_${randomBytes(16).toString('hex')}`;
const temp = [];
let hub;
let context;

async function cleanup() {
  await context?.close().catch(() => {});
  await hub?.stop().catch(() => {});
  await stopAllChildren();
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

function percentile(sorted, q) {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Frame deltas and long tasks in the page for `ms`, optionally scrolling the job list every frame. */
function recordFrames(page, ms, scroll) {
  return page.evaluate(
    async ({ ms, scroll }) => {
      const deltas = [];
      const longTasks = [];
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) longTasks.push(entry.duration);
      });
      observer.observe({ type: 'longtask' });
      const list = document.querySelector('.vlist');
      let direction = 1;
      await new Promise((resolve) => {
        let last = 0;
        let end = 0;
        const frame = (now) => {
          if (last) deltas.push(now - last);
          else end = now + ms;
          last = now;
          if (scroll && list) {
            const max = list.scrollHeight - list.clientHeight;
            const next = list.scrollTop + direction * 45;
            if (next >= max || next <= 0) direction = -direction;
            list.scrollTop = Math.max(0, Math.min(max, next));
          }
          if (now < end || !end) requestAnimationFrame(frame);
          else resolve();
        };
        requestAnimationFrame(frame);
      });
      observer.disconnect();
      return {
        deltas,
        longTasks,
        heapBytes: performance.memory?.usedJSHeapSize ?? null,
        renderedRows: document.querySelectorAll('.vlist [data-index]').length,
        historyReads: window.historyReads,
        counts: document.querySelector('.jobs-view__counts')?.textContent ?? '',
      };
    },
    { ms, scroll },
  );
}

async function mainThread(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  const get = (name) => metrics.find((m) => m.name === name)?.value ?? 0;
  return {
    task: get('TaskDuration'),
    script: get('ScriptDuration'),
    layout: get('LayoutDuration'),
    style: get('RecalcStyleDuration'),
  };
}

async function stats(client) {
  return client.ok('GET', '/v1/stats');
}

async function measure(name, page, cdp, client, scroll, profileAs) {
  log(`measuring: ${name} (${phaseSeconds} s)`);
  if (profileAs) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  const before = {
    main: await mainThread(cdp),
    stats: await stats(client),
    at: performance.now(),
    historyReads: await page.evaluate(() => window.historyReads),
  };
  const frames = await recordFrames(page, phaseSeconds * 1000, scroll);
  const after = { main: await mainThread(cdp), stats: await stats(client), at: performance.now() };
  if (profileAs) {
    const { profile } = await cdp.send('Profiler.stop');
    mkdirSync(join(resultsDir, 'profiles'), { recursive: true });
    writeFileSync(join(resultsDir, 'profiles', `dashboard-${profileAs}.cpuprofile`), JSON.stringify(profile));
  }
  const seconds = (after.at - before.at) / 1000;
  const sorted = Float64Array.from(frames.deltas).sort();
  return {
    name,
    seconds,
    frames: frames.deltas.length,
    fps: frames.deltas.length / (frames.deltas.reduce((a, b) => a + b, 0) / 1000),
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: percentile(sorted, 1),
    missed: frames.deltas.filter((d) => d > 2 * FRAME_MS).length,
    longTasks: frames.longTasks.length,
    longTaskMs: frames.longTasks.reduce((a, b) => a + b, 0),
    longestTaskMs: Math.max(0, ...frames.longTasks),
    mainThreadBusy: (after.main.task - before.main.task) / seconds,
    scriptShare: (after.main.script - before.main.script) / seconds,
    layoutStyleShare:
      (after.main.layout - before.main.layout + after.main.style - before.main.style) / seconds,
    messagesPerSecond: (after.stats.events.messagesSent - before.stats.events.messagesSent) / seconds,
    collapsed: after.stats.events.collapsed - before.stats.events.collapsed,
    historyReadsPerSecond: (frames.historyReads - before.historyReads) / seconds,
    heapBytes: frames.heapBytes,
    renderedRows: frames.renderedRows,
    counts: frames.counts,
  };
}

async function main() {
  mkdirSync(resultsDir, { recursive: true });
  const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-bench-dashboard-'));
  temp.push(dataDir);
  hub = await startChild(join(root, 'bench', 'hub-child.js'), {
    env: { HEADWAY_JWT_SECRET: secret, HEADWAY_API_KEYS: apiKey, HEADWAY_DATA_DIR: dataDir },
    logFile: join(resultsDir, 'dashboard-headway.log'),
  });
  const client = createHttpClient(hub.url, { apiKey, maxSockets: MAX_IN_FLIGHT });
  const jobs = Array.from({ length: JOBS }, (_, i) => `load-${String(i).padStart(4, '0')}`);
  log(`creating ${JOBS} jobs`);
  await mapLimit(jobs, 16, (id) =>
    client.ok('POST', '/v1/jobs', { id, owner: 'bench', name: `Transcode clip-${id.slice(5)}.mp4` }),
  );
  const { token } = await client.ok('POST', '/v1/tokens', { user: 'bench-admin', admin: true, ttl: 3600 });

  const profile = mkdtempSync(join(os.tmpdir(), 'headway-bench-chromium-'));
  temp.push(profile);
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  // Count the page's history reads: the client fills each seq gap (collapsed progress) from the history endpoint.
  await page.addInitScript(() => {
    window.historyReads = 0;
    const original = window.fetch;
    window.fetch = (input, init) => {
      if (String(input instanceof Request ? input.url : input).includes('/events?')) window.historyReads++;
      return original(input, init);
    };
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(`${hub.url}/#token=${token}`);
  await page.waitForSelector('.connection[data-state="connected"]');
  await page.waitForSelector('.vlist [data-index]');

  const results = [];
  results.push(await measure('No updates, top of the list', page, cdp, client, false));
  results.push(await measure('No updates, scrolling', page, cdp, client, true));
  await page.evaluate(() => {
    document.querySelector('.vlist').scrollTop = 0;
  });

  log(`load: ${JOBS} jobs × ${UPDATES_PER_JOB_PER_SECOND} updates/s`);
  const machineBefore = machineBusySeconds();
  const hubBefore = await hub.stats();
  const loadStart = performance.now();
  const load = offerEvents(client, {
    jobs,
    eventsPerJobPerSecond: UPDATES_PER_JOB_PER_SECOND,
    durationMs: WARM_UP_MS + 2 * phaseSeconds * 1000 + 3_000,
    batchSize: BATCH_SIZE,
    maxInFlight: MAX_IN_FLIGHT,
  });
  await sleep(WARM_UP_MS);
  const profiled = (name) => (args.profile ? name : undefined);
  results.push(await measure('Under load, top of the list', page, cdp, client, false, profiled('top')));
  results.push(await measure('Under load, scrolling', page, cdp, client, true, profiled('scrolling')));
  const offered = await load;
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const hubAfter = await hub.stats();
  const machineAfter = machineBusySeconds();
  const acceptedEvents = [...offered.accepted.values()].reduce((a, b) => a + b, 0);
  client.close();

  const lines = [
    `Dashboard load check, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}, ${os.platform()} ${os.release()}`,
    '',
    `${fmt.int(JOBS)} active jobs in the jobs view; under load each reports ${UPDATES_PER_JOB_PER_SECOND} times a second (${fmt.int(JOBS * UPDATES_PER_JOB_PER_SECOND)} events/s offered).`,
    '',
    '| Phase | Frames/s | Frame p50 / p95 / p99 / max (ms) | Frames > 33 ms | Long tasks (total ms, longest) | Main thread busy (script, layout + style) | Messages to the page/s | History reads/s | Rows in the DOM |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.name} | ${fmt.dec(r.fps)} | ${fmt.dec(r.p50)} / ${fmt.dec(r.p95)} / ${fmt.dec(r.p99)} / ${fmt.dec(r.max)} | ` +
        `${fmt.int(r.missed)} of ${fmt.int(r.frames)} | ${fmt.int(r.longTasks)} (${fmt.int(r.longTaskMs)} ms, ${fmt.int(r.longestTaskMs)} ms) | ` +
        `${Math.round(r.mainThreadBusy * 100)}% (${Math.round(r.scriptShare * 100)}%, ${Math.round(r.layoutStyleShare * 100)}%) | ` +
        `${fmt.int(r.messagesPerSecond)} | ${fmt.int(r.historyReadsPerSecond)} | ${r.renderedRows} |`,
    );
  }
  const loaded = results.slice(2);
  const worstP95 = Math.max(...loaded.map((r) => r.p95));
  const longest = Math.max(...loaded.map((r) => r.longestTaskMs));
  const hubCpu = (hubAfter.cpuSeconds - hubBefore.cpuSeconds) / loadSeconds;
  const machine =
    machineBefore === null || machineAfter === null ? null : (machineAfter - machineBefore) / loadSeconds;
  lines.push(
    '',
    `Goals under load: frame p95 < ${fmt.dec(GOAL_P95_MS)} ms (at most one missed frame at 60 Hz): ${fmt.dec(worstP95)} ms — ` +
      `${worstP95 < GOAL_P95_MS ? 'pass' : '**FAIL**'}; longest task ≤ ${GOAL_LONGEST_TASK_MS} ms: ${fmt.int(longest)} ms — ` +
      `${longest <= GOAL_LONGEST_TASK_MS ? 'pass' : '**FAIL**'}.`,
    `Load: ${fmt.int(acceptedEvents)} events accepted in ${fmt.dec(offered.sendSeconds)} s ` +
      `(${fmt.int(acceptedEvents / offered.sendSeconds)}/s, ${offered.failedRequests} failed requests); ` +
      `${fmt.int(loaded.reduce((a, r) => a + r.collapsed, 0))} progress events collapsed for the page; ` +
      `page shows "${results.at(-1).counts}"; page heap ${results.at(-1).heapBytes ? fmt.mib(results.at(-1).heapBytes) : 'n/a'}.`,
    `Cores busy during the load: hub ${fmt.dec(hubCpu)}` +
      (machine === null
        ? ''
        : `, whole machine ${fmt.dec(machine)} (Chromium, the load generator and the rest)`) +
      '.',
  );
  const table = lines.join('\n');
  console.log(table);
  writeFileSync(join(resultsDir, 'dashboard.md'), `${table}\n`);
  writeFileSync(
    join(resultsDir, 'dashboard.json'),
    `${JSON.stringify({ results, acceptedEvents, loadSeconds, hubCpu, machine }, null, 2)}\n`,
  );
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
