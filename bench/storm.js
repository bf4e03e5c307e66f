#!/usr/bin/env node
/**
 * Reconnect storm (`node bench/storm.js`; see docs/benchmarks.md): do live
 * deliveries keep flowing while every client of a restarted hub connects at once?
 *
 * The hub (the built server in a child process, SQLite, `--max-connections`
 * above the load) serves 200 live watchers (2 per job over 100 jobs, 10 progress
 * events per job per second through `POST /v1/events`: 2,000 deliveries/s).
 * After 3 s, 10,000 more clients connect at once (1,000 handshakes under way at a
 * time, the most this load generator sustains), each with its own browser token
 * and one subscription to a job of its own; they disconnect, and the live load
 * runs 3 s more. Three storms: the first on a process that has not served so many
 * yet (a restart), the second with new tokens on a warmed-up process, the third
 * with the second's tokens again (a network blip: the hub remembers the tokens
 * it verified).
 *
 * Reported per window (before, during and after each storm): the live watchers'
 * delivery latency (hub acceptance → watcher) p50 / p99 / max, the storm's
 * connects per second, the hub's CPU per connect and per disconnect (until every
 * storm client has seen its close) and its longest event-loop delay in each, and
 * every live delivery accounted for (none missing, none twice).
 *
 * Options: --connections=<storm size> (default 10,000)   --concurrency=<handshakes at once> (default 1,000)
 *          --profile   a CPU profile of the hub during each storm, in bench/results/profiles
 * Writes bench/results/storm.{md,json}; changes no tracked file.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startChild } from './lib/children.js';
import { createHttpClient, mapLimit } from './lib/http-client.js';
import { offerEvents } from './lib/load.js';
import { fmt, percentiles } from './lib/report.js';
import { closeSubscribers, connectSubscribers } from './lib/subscribers.js';
import { signViewerToken } from './lib/tokens.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '1000' },
    profile: { type: 'boolean', default: false },
  },
});
const STORM = { connections: Number(args.connections), concurrency: Number(args.concurrency), jobs: 1_000 };
const LIVE = {
  jobs: 100,
  subscribersPerJob: 2,
  eventsPerJobPerSecond: 10, // 100 jobs × 10/s × 2 watchers = 2,000 deliveries/s
  batchSize: 20,
  maxInFlight: 8,
};
const QUIET_MS = 3_000; // live load alone before and after each storm
const DRAIN_TIMEOUT_MS = 10_000;

const resultsDir = fileURLToPath(new URL('results', import.meta.url));
const secret = randomBytes(32).toString('base64url');
const apiKey = randomBytes(24).toString('base64url');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...parts) => console.error(`[storm ${new Date().toISOString().slice(11, 19)}]`, ...parts);

/** A Markdown table. */
function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-storm-'));
mkdirSync(resultsDir, { recursive: true });
const server = await startChild(fileURLToPath(new URL('hub-child.js', import.meta.url)), {
  env: {
    HEADWAY_JWT_SECRET: secret,
    HEADWAY_API_KEYS: apiKey,
    HEADWAY_DATA_DIR: dataDir,
    HEADWAY_MAX_CONNECTIONS: String(STORM.connections + 2_000),
  },
  execArgv: process.env.STORM_TRACE_GC ? ['--trace-gc'] : [],
  logFile: join(resultsDir, 'storm-headway.log'),
});
const client = createHttpClient(server.url, { apiKey, maxSockets: 16 });
const wsUrl = `${server.url.replace(/^http/, 'ws')}/v1/ws`;
let live = [];
const cleanups = [];
try {
  const liveJobs = Array.from({ length: LIVE.jobs }, (_, i) => `live-${i}`);
  const stormJobs = Array.from({ length: STORM.jobs }, (_, i) => `storm-${i}`);
  await mapLimit([...liveJobs, ...stormJobs], 16, (id) =>
    client.ok('POST', '/v1/jobs', { id, owner: 'bench', name: id }),
  );
  const token = (user, job) => signViewerToken(secret, { user, jobs: [job] });
  live = await connectSubscribers(
    wsUrl,
    Array.from({ length: LIVE.jobs * LIVE.subscribersPerJob }, (_, v) => {
      const job = liveJobs[v % LIVE.jobs];
      return { job, token: token(`live-${v}`, job) };
    }),
  );
  // The storm's clients run in a process of their own: their handshakes must not
  // delay this process's reading of the live deliveries.
  const stormer = fork(fileURLToPath(new URL('lib/storm-clients.js', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanups.push(() => stormer.kill());
  let asked = 0;
  const ask = (message) =>
    new Promise((resolve, reject) => {
      const id = ++asked;
      const onMessage = (m) => {
        if (m.id !== id) return;
        stormer.off('message', onMessage);
        if (m.error) reject(new Error(m.error));
        else resolve(m);
      };
      stormer.on('message', onMessage);
      stormer.send({ ...message, id });
    });
  const storm = (prefix) =>
    ask({
      type: 'connect',
      wsUrl,
      secret,
      prefix,
      count: STORM.connections,
      jobs: stormJobs,
      concurrency: STORM.concurrency,
    });
  await sleep(500);
  for (const s of live) s.resetCounters();

  // The live load runs through both storms and the quiet windows around them.
  const windows = [];
  const storms = [];
  const stormRuns = [
    ['first storm (a fresh process)', 'storm'],
    ['second storm (new tokens)', 'blip'],
    ['third storm (the same tokens again)', 'blip'],
  ];
  const estimatedMs = QUIET_MS * (stormRuns.length + 1) + stormRuns.length * 8_000;
  log(
    `live load: ${fmt.int(LIVE.jobs * LIVE.eventsPerJobPerSecond * LIVE.subscribersPerJob)} deliveries/s to ${live.length} watchers`,
  );
  const offering = offerEvents(client, { ...LIVE, jobs: liveJobs, durationMs: estimatedMs });
  const started = performance.now();
  let mark = started + 1_000; // the first second warms up
  await sleep(QUIET_MS);
  for (const [label, prefix] of stormRuns) {
    windows.push({ label: `before the ${label.split(' (')[0]}`, from: mark, to: performance.now() });
    log(`${label}: ${fmt.int(STORM.connections)} clients, ${fmt.int(STORM.concurrency)} at a time`);
    if (args.profile) await server.startProfile();
    const before = await server.stats();
    const t0 = performance.now();
    const { connections } = await storm(prefix);
    const t1 = performance.now();
    const after = await server.stats();
    if (args.profile) {
      mkdirSync(join(resultsDir, 'profiles'), { recursive: true });
      await server.stopProfile(join(resultsDir, 'profiles', `storm-${storms.length + 1}.cpuprofile`));
    }
    windows.push({ label: `during the ${label}`, from: t0, to: t1 });
    storms.push({
      label,
      connections,
      seconds: (t1 - t0) / 1000,
      connectsPerSecond: connections / ((t1 - t0) / 1000),
      serverCpuUsPerConnect: ((after.cpuSeconds - before.cpuSeconds) * 1e6) / connections,
      eventLoopDelayMaxMs: after.lag?.maxMs ?? null,
    });
    log(`${label}:`, JSON.stringify(storms.at(-1)));
    mark = performance.now();
    if (args.profile) await server.startProfile();
    const beforeClose = await server.stats();
    await ask({ type: 'close' });
    const afterClose = await server.stats();
    if (args.profile) {
      await server.stopProfile(join(resultsDir, 'profiles', `storm-${storms.length}-close.cpuprofile`));
    }
    Object.assign(storms.at(-1), {
      closeSeconds: (performance.now() - mark) / 1000,
      serverCpuUsPerDisconnect: ((afterClose.cpuSeconds - beforeClose.cpuSeconds) * 1e6) / connections,
      closeEventLoopDelayMaxMs: afterClose.lag?.maxMs ?? null,
    });
    await sleep(QUIET_MS);
  }
  const offer = await offering;
  windows.push({ label: 'after both', from: mark, to: performance.now() });
  const expected = (s) => offer.accepted.get(s.job);
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (live.some((s) => s.received + s.skipped < expected(s)) && performance.now() < deadline)
    await sleep(20);

  let offered = 0;
  let received = 0;
  let duplicates = 0;
  let skipped = 0;
  for (const s of live) {
    offered += expected(s);
    received += s.received;
    duplicates += s.duplicates;
    skipped += s.skipped;
  }
  const rows = windows.map((w) => {
    const samples = [];
    for (const s of live)
      for (let i = 0; i < s.arrivals.length; i++)
        if (s.arrivals[i] >= w.from && s.arrivals[i] < w.to) samples.push(s.latencies[i]);
    return { ...w, seconds: (w.to - w.from) / 1000, latencyMs: percentiles(samples) };
  });
  const result = {
    live: {
      watchers: live.length,
      offered,
      received,
      missing: offered - received - skipped,
      collapsed: skipped,
      duplicates,
    },
    storms,
    windows: rows.map(({ label, seconds, latencyMs }) => ({ label, seconds, latencyMs })),
  };

  const lines = [
    `Reconnect storm, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${os.cpus().length} × ${os.cpus()[0]?.model.split(' ')[0] ?? 'CPU'}, Node ${process.version}`,
    '',
    table(
      ['Live deliveries (2,000/s to 200 watchers)', 'Window, s', 'Latency p50 / p99 / max, ms', 'Samples'],
      rows.map((r) => [
        r.label,
        fmt.dec(r.seconds),
        `${fmt.int(r.latencyMs.p50)} / ${fmt.int(r.latencyMs.p99)} / ${fmt.int(r.latencyMs.max)}`,
        fmt.int(r.latencyMs.samples),
      ]),
    ),
    '',
    table(
      [
        'Storm',
        'Clients',
        'Seconds',
        'Connects/s',
        'Server CPU µs per connect',
        'Longest event-loop delay, ms',
        'Leaving: seconds',
        'Server CPU µs per disconnect',
        'Longest event-loop delay while leaving, ms',
      ],
      storms.map((s) => [
        s.label,
        fmt.int(s.connections),
        fmt.dec(s.seconds),
        fmt.int(s.connectsPerSecond),
        fmt.int(s.serverCpuUsPerConnect),
        s.eventLoopDelayMaxMs === null ? '—' : fmt.int(s.eventLoopDelayMaxMs),
        fmt.dec(s.closeSeconds),
        fmt.int(s.serverCpuUsPerDisconnect),
        s.closeEventLoopDelayMaxMs === null ? '—' : fmt.int(s.closeEventLoopDelayMaxMs),
      ]),
    ),
    '',
    `Live watchers: ${fmt.int(result.live.received)} of ${fmt.int(offered)} deliveries received; ` +
      `${fmt.int(result.live.missing)} missing, ${fmt.int(skipped)} collapsed, ${fmt.int(duplicates)} duplicated.`,
  ];
  const text = lines.join('\n');
  console.log(text);
  writeFileSync(join(resultsDir, 'storm.md'), `${text}\n`);
  writeFileSync(join(resultsDir, 'storm.json'), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const cleanup of cleanups) cleanup();
  await closeSubscribers(live);
  client.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
