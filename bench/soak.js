#!/usr/bin/env node
/**
 * Soak: a steady load on one hub for a long time, to see whether its memory, its
 * event loop and its database stay flat (see docs/benchmarks.md, "Soak").
 *
 *   - `--rate` progress events/s (default 500) over `--jobs` jobs (default 50), posted
 *     to `POST /v1/events` in batches of 50; a job completes after `--job-events`
 *     events (default 300) and a new one takes its place, so jobs are created,
 *     finished and forgotten all along;
 *   - `--watchers` WebSocket watchers (default 200), each subscribed to all jobs of
 *     one of 20 owners (new jobs included), in `--state` mode: `delta` (the default,
 *     as `@headway/client` subscribes) or `full`;
 *   - every `--interval` seconds (default 15) one line: the hub's RSS, heap used,
 *     event-loop delay (p99 and max over the interval), the size of its database
 *     files, and the events posted and delivered so far.
 *
 * Options: --duration=<seconds> (default 1800)  --durability=normal|full
 *          --out=<file> also write the series as a Markdown table
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { startChild } from './lib/children.js';
import { createHttpClient } from './lib/http-client.js';
import { signViewerToken } from './lib/tokens.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '1800' },
    interval: { type: 'string', default: '15' },
    rate: { type: 'string', default: '500' },
    jobs: { type: 'string', default: '50' },
    'job-events': { type: 'string', default: '300' },
    watchers: { type: 'string', default: '200' },
    durability: { type: 'string', default: 'normal' },
    state: { type: 'string', default: 'delta' },
    out: { type: 'string' },
  },
});
if (args.state !== 'delta' && args.state !== 'full') throw new TypeError('--state must be delta or full');
for (const name of ['duration', 'interval', 'rate', 'jobs', 'job-events', 'watchers']) {
  if (!(Number(args[name]) > 0)) throw new TypeError(`--${name} must be a positive number`);
}
const SOAK = {
  durationMs: Number(args.duration) * 1000,
  intervalMs: Number(args.interval) * 1000,
  eventsPerSecond: Number(args.rate),
  jobs: Number(args.jobs),
  eventsPerJob: Number(args['job-events']),
  watchers: Number(args.watchers),
  owners: 20, // 10 watchers each: the default per-user connection limit
  batchSize: 50, // events per POST /v1/events
  maxInFlight: 4, // requests on the wire at once
};
const TICK_MS = 20; // pacing resolution of the publisher

const secret = randomBytes(32).toString('base64url');
const apiKey = `soak-${randomBytes(16).toString('hex')}`;
const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-soak-'));
process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130));

const log = (...parts) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}]`, ...parts);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const MiB = 1024 * 1024;

function databaseBytes() {
  let total = 0;
  for (const name of readdirSync(dataDir)) {
    if (name.startsWith('headway.db')) total += statSync(join(dataDir, name)).size;
  }
  return total;
}

/** One watcher of all jobs of `owner`; counts the events it receives. */
function watch(wsUrl, owner, counters) {
  const token = signViewerToken(secret, { user: owner, jobs: undefined });
  const ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`, { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', (code) => {
      counters.closed++;
      counters.lastCloseCode = code;
    });
    ws.on('message', (buf) => {
      if (buf[9] === 0x65 && buf.toString('latin1', 0, 15) === '{"type":"event"') {
        counters.delivered++;
        return;
      }
      const message = JSON.parse(buf.toString());
      if (message.type === 'welcome')
        ws.send(JSON.stringify({ type: 'subscribe', id: 'u', scope: 'user', state: args.state }));
      else if (message.type === 'subscribed') resolve(ws);
      else if (message.type === 'error') reject(new Error(`${message.code}: ${message.message}`));
    });
  });
}

mkdirSync(join(root, 'bench', 'results'), { recursive: true });
const hub = await startChild(join(root, 'bench', 'hub-child.js'), {
  env: {
    HEADWAY_JWT_SECRET: secret,
    HEADWAY_API_KEYS: apiKey,
    HEADWAY_DATA_DIR: dataDir,
    HEADWAY_DURABILITY: args.durability,
  },
  logFile: join(root, 'bench', 'results', 'soak-hub.log'),
});
const client = createHttpClient(hub.url, { apiKey, maxSockets: SOAK.maxInFlight });
const counters = { posted: 0, failed: 0, delivered: 0, closed: 0, lastCloseCode: 0, jobsCreated: 0 };
const owners = Array.from({ length: SOAK.owners }, (_, i) => `soak-owner-${i}`);

/** Live jobs: id → events posted so far. */
const live = new Map();
async function newJob(slot) {
  const id = `soak-${slot}-${counters.jobsCreated++}`;
  await client.ok('POST', '/v1/jobs', { id, owner: owners[slot % owners.length], name: `soak job ${id}` });
  live.set(id, 0);
}

try {
  await Promise.all(Array.from({ length: SOAK.jobs }, (_, slot) => newJob(slot)));
  const wsUrl = `${hub.url.replace(/^http/, 'ws')}/v1/ws`;
  log(`connecting ${SOAK.watchers} watchers`);
  const sockets = [];
  for (let w = 0; w < SOAK.watchers; w++)
    sockets.push(await watch(wsUrl, owners[w % owners.length], counters));

  log(
    `offering ${SOAK.eventsPerSecond} events/s over ${SOAK.jobs} jobs for ${SOAK.durationMs / 1000} s (durability ${args.durability}, ${args.state} state)`,
  );
  const series = [];
  const start = performance.now();
  let sentBatches = 0;
  let inFlight = 0;
  const batchesPerSecond = SOAK.eventsPerSecond / SOAK.batchSize;
  let jobCursor = 0;

  function sendBatch() {
    const events = [];
    const finished = [];
    const ids = [...live.keys()];
    for (let i = 0; i < SOAK.batchSize; i++) {
      const id = ids[jobCursor++ % ids.length];
      if (finished.includes(id)) continue;
      const n = live.get(id) + 1;
      live.set(id, n);
      if (n >= SOAK.eventsPerJob) {
        events.push({ job: id, kind: 'completed', result: { n } });
        finished.push(id);
      } else {
        events.push({
          job: id,
          kind: 'progress',
          percent: (100 * n) / SOAK.eventsPerJob,
          message: `step ${n}`,
        });
      }
    }
    sentBatches++;
    inFlight++;
    client
      .request('POST', '/v1/events', { events })
      .then((res) => {
        if (res.status !== 200) counters.failed += events.length;
        else counters.posted += events.length;
      })
      .catch(() => {
        counters.failed += events.length;
      })
      .finally(async () => {
        inFlight--;
        for (const id of finished) {
          live.delete(id);
          await newJob(Number(id.split('-')[1])).catch(() => counters.failed++);
        }
      });
  }

  const pacer = setInterval(() => {
    const due = Math.floor(((performance.now() - start) / 1000) * batchesPerSecond);
    while (sentBatches < due && inFlight < SOAK.maxInFlight) sendBatch();
  }, TICK_MS);

  const header =
    '| t (min) | RSS (MiB) | heap used (MiB) | loop p99 / max (ms) | db files (MiB) | posted | delivered |';
  console.log(header);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (let t = SOAK.intervalMs; t <= SOAK.durationMs; t += SOAK.intervalMs) {
    await sleep(start + t - performance.now());
    const stats = await hub.stats();
    const row = {
      minutes: t / 60_000,
      rssMiB: stats.memory.rss / MiB,
      heapMiB: stats.memory.heapUsed / MiB,
      lagP99Ms: stats.lag.p99Ms,
      lagMaxMs: stats.lag.maxMs,
      dbMiB: databaseBytes() / MiB,
      posted: counters.posted,
      delivered: counters.delivered,
    };
    series.push(row);
    console.log(
      `| ${row.minutes.toFixed(2)} | ${row.rssMiB.toFixed(1)} | ${row.heapMiB.toFixed(1)} | ${row.lagP99Ms.toFixed(0)} / ${row.lagMaxMs.toFixed(0)} | ${row.dbMiB.toFixed(1)} | ${row.posted} | ${row.delivered} |`,
    );
  }
  clearInterval(pacer);
  while (inFlight > 0) await sleep(50);
  log(
    `failed events ${counters.failed}, watcher closes ${counters.closed} (last code ${counters.lastCloseCode})`,
  );
  if (args.out) {
    mkdirSync(dirname(args.out), { recursive: true });
    writeFileSync(
      args.out,
      `${JSON.stringify({ soak: SOAK, durability: args.durability, series }, null, 2)}\n`,
    );
  }
  for (const ws of sockets) ws.terminate();
} finally {
  client.close();
  await hub.stop();
}
