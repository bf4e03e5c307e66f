#!/usr/bin/env node
/**
 * Headway with several processes (`node bench/cluster.js`; see docs/benchmarks.md):
 *
 *   1. ingest  — events/s persisted through `POST /v1/jobs/:id/events` by one hub
 *                process on PostgreSQL (group commit), closed loop;
 *   2. latency — two hub processes sharing PostgreSQL and Redis: events posted to
 *                hub A (20 jobs × 50 events/s), ten WebSocket watchers per job on
 *                hub B: 10,000 deliveries/s; latency from the POST being sent to the
 *                event arriving at the watcher, and from the event's `at` (when
 *                hub A accepted it) to its arrival.
 *
 * Needs a built tree (`npm run build`), PostgreSQL and Redis (HEADWAY_BENCH_POSTGRES_URL,
 * default postgres://postgres@127.0.0.1:5432/postgres; HEADWAY_BENCH_REDIS_URL,
 * default redis://127.0.0.1:6379). Each run uses its own schema and key prefix and
 * removes them. Options: --duration=<seconds of each load> (default 10).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import WebSocket from 'ws';
import { createHttpClient } from './lib/http-client.js';
import { ingestEvents } from './lib/load.js';
import { fmt, renderTable } from './lib/report.js';
import { signViewerToken } from './lib/tokens.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'packages/server/bin/headway.js');
const POSTGRES_URL = process.env.HEADWAY_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.HEADWAY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SECRET = randomBytes(32).toString('hex');
const API_KEY = `bench_${randomBytes(16).toString('hex')}`;

const { values: args } = parseArgs({ options: { duration: { type: 'string', default: '10' } } });
const loadMs = Number(args.duration) * 1000;
if (!(loadMs > 0)) throw new TypeError('--duration must be a positive number of seconds');

const INGEST = { jobs: 100, batchSize: 100, concurrency: 16, goal: 10_000 };
// 20 jobs × 50 events/s × 10 watchers each = 10,000 deliveries/s crossing from hub A to hub B.
const LATENCY = { jobs: 20, eventsPerJobPerSecond: 50, watchersPerJob: 10, tickMs: 20, warmupMs: 1_000 };

const run = randomBytes(4).toString('hex');
const schema = `hw_bench_${run}`;
const prefix = `hw_bench_${run}:`;
const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-bench-cluster-'));
const children = new Set();

const log = (line) => process.stderr.write(`${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A hub process on the shared PostgreSQL schema and Redis prefix; resolves with its URL. */
async function startHub(name) {
  const child = spawn(
    process.execPath,
    [
      bin,
      'start',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--postgres',
      POSTGRES_URL,
      '--postgres-schema',
      schema,
      '--redis',
      REDIS_URL,
      '--redis-prefix',
      prefix,
      '--log-level',
      'warn',
      // The banner, for its URL line (a pipe gets JSON logs otherwise).
      '--log-format',
      'pretty',
      // The latency phase's 100 viewers are one "user" each; the ingest lanes share one key.
      '--connections-per-user',
      '1000',
    ],
    { env: { PATH: process.env.PATH, NO_COLOR: '1', HEADWAY_JWT_SECRET: SECRET, HEADWAY_API_KEYS: API_KEY } },
  );
  children.add(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c) => (output += c));
  child.once('exit', () => children.delete(child));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const url = /^ {2}URL +(http:\/\/\S+)$/m.exec(output)?.[1];
    if (url) return { name, url, child };
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`hub ${name} did not start:\n${output}`);
    await sleep(25);
  }
}

async function stopHub(hub) {
  if (hub.child.exitCode !== null) return;
  const exited = new Promise((resolve) => hub.child.once('exit', resolve));
  hub.child.kill('SIGTERM');
  await Promise.race([exited, sleep(5_000)]);
  if (hub.child.exitCode === null) hub.child.kill('SIGKILL');
}

async function createJobs(client, ids) {
  for (const id of ids) {
    const res = await client.request('POST', '/v1/jobs', { id, owner: 'bench', name: id });
    if (res.status !== 201 && res.status !== 200) throw new Error(`create ${id}: ${res.status} ${res.text}`);
  }
}

function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function ingestPhase() {
  log('ingest: one hub on PostgreSQL …');
  const hub = await startHub('A');
  try {
    const client = createHttpClient(hub.url, { apiKey: API_KEY, maxSockets: INGEST.concurrency });
    const jobs = Array.from({ length: INGEST.jobs }, (_, i) => `ingest-${i}`);
    await createJobs(client, jobs);
    const result = await ingestEvents(client, { ...INGEST, jobs, durationMs: loadMs });
    if (result.failedRequests > 0)
      log(`ingest: ${result.failedRequests} requests failed (${result.firstError})`);
    return result;
  } finally {
    await stopHub(hub);
  }
}

async function latencyPhase() {
  log('latency: hub A ingests, watchers on hub B …');
  const [a, b] = await Promise.all([startHub('A'), startHub('B')]);
  const watchers = [];
  try {
    const client = createHttpClient(a.url, { apiKey: API_KEY, maxSockets: 8 });
    const jobs = Array.from({ length: LATENCY.jobs }, (_, i) => `latency-${i}`);
    await createJobs(client, jobs);
    const wsUrl = `${b.url.replace(/^http/, 'ws')}/v1/ws`;
    const sentToArrival = [];
    const acceptedToArrival = [];
    let measureFrom = Number.POSITIVE_INFINITY;
    let received = 0;
    let outOfOrder = 0;
    const viewers = jobs.flatMap((job, i) =>
      Array.from({ length: LATENCY.watchersPerJob }, (_, w) => ({ job, user: `viewer-${i}-${w}` })),
    );
    await Promise.all(
      viewers.map(
        ({ job, user }) =>
          new Promise((resolve, reject) => {
            const token = signViewerToken(SECRET, { user, jobs: [job] });
            const ws = new WebSocket(`${wsUrl}?token=${token}`);
            let lastSeq = 0;
            watchers.push(ws);
            ws.on('error', reject);
            ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 's', job })));
            ws.on('message', (raw) => {
              const now = Date.now();
              const m = JSON.parse(raw.toString());
              if (m.type === 'subscribed') resolve();
              if (m.type !== 'event') return;
              received++;
              if (m.seq <= lastSeq) outOfOrder++;
              lastSeq = m.seq;
              const sent = Number(m.data.message);
              if (sent < measureFrom) return;
              sentToArrival.push(now - sent);
              acceptedToArrival.push(now - Date.parse(m.at));
            });
          }),
      ),
    );

    // Open loop: every tick one event for each job, in one request, on schedule.
    const perTick = Math.round((LATENCY.eventsPerJobPerSecond * LATENCY.tickMs) / 1000);
    const start = Date.now();
    measureFrom = start + LATENCY.warmupMs;
    const end = start + LATENCY.warmupMs + loadMs;
    let offered = 0;
    let failed = 0;
    let skipped = 0;
    const inFlight = new Set();
    for (let tick = 0; ; tick++) {
      const due = start + tick * LATENCY.tickMs;
      if (due >= end) break;
      if (due > Date.now()) await sleep(due - Date.now());
      if (inFlight.size >= 32) {
        skipped += jobs.length * perTick; // the hub fell behind: not sent, and reported
        continue;
      }
      const events = [];
      const sent = String(Date.now());
      for (let k = 0; k < perTick; k++) {
        for (const job of jobs)
          events.push({ job, kind: 'progress', percent: (tick % 99) + 1, message: sent });
      }
      offered += events.length;
      const p = client.request('POST', '/v1/events', { events }).then((res) => {
        if (res.status >= 300) failed += events.length;
      });
      inFlight.add(p);
      p.finally(() => inFlight.delete(p));
    }
    await Promise.all(inFlight);
    const expected = (offered - failed) * LATENCY.watchersPerJob;
    const deadline = Date.now() + 10_000;
    while (received < expected && Date.now() < deadline) await sleep(50);
    const seconds = (Date.now() - start) / 1000;
    sentToArrival.sort((x, y) => x - y);
    acceptedToArrival.sort((x, y) => x - y);
    return {
      offered,
      failed,
      skipped,
      received,
      outOfOrder,
      deliveriesPerSecond: received / seconds,
      offeredPerSecond: offered / ((end - start) / 1000),
      sentMs: { p50: quantile(sentToArrival, 0.5), p99: quantile(sentToArrival, 0.99) },
      acceptedMs: { p50: quantile(acceptedToArrival, 0.5), p99: quantile(acceptedToArrival, 0.99) },
    };
  } finally {
    for (const ws of watchers) ws.terminate();
    await Promise.all([stopHub(a), stopHub(b)]);
  }
}

async function cleanup() {
  for (const child of children) child.kill('SIGKILL');
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  rmSync(dataDir, { recursive: true, force: true });
}

async function main() {
  if (!existsSync(join(root, 'packages/server/dist/cli.js'))) {
    throw new Error('not built yet: run `npm run build` first');
  }
  process.once('SIGINT', () => {
    for (const child of children) child.kill('SIGKILL');
    process.exit(130);
  });
  try {
    const ingest = await ingestPhase();
    const latency = await latencyPhase();
    const rows = [
      {
        metric: 'Ingest on PostgreSQL, events/s (one process, group commit)',
        goal: `≥ ${fmt.int(INGEST.goal)}`,
        result: fmt.int(ingest.eventsPerSecond),
        pass: ingest.eventsPerSecond >= INGEST.goal,
      },
      {
        metric: 'Ingest request latency p50 / p99, ms',
        goal: '—',
        result: `${fmt.dec(ingest.latencyMs.p50)} / ${fmt.dec(ingest.latencyMs.p99)}`,
        pass: null,
      },
      {
        metric: 'Cross-process deliveries/s (20 jobs × 50 events/s × 10 watchers on hub B)',
        goal: '≥ 9,500',
        result: fmt.int(latency.deliveriesPerSecond),
        pass: latency.deliveriesPerSecond >= 9_500,
      },
      {
        metric: 'Missing / out-of-order deliveries',
        goal: '0 / 0',
        result: `${fmt.int((latency.offered - latency.failed) * LATENCY.watchersPerJob - latency.received)} / ${fmt.int(latency.outOfOrder)}`,
        pass:
          latency.received === (latency.offered - latency.failed) * LATENCY.watchersPerJob &&
          latency.outOfOrder === 0,
      },
      {
        metric: 'Latency POST sent → watcher on hub B, p50 / p99, ms',
        goal: '—',
        result: `${fmt.int(latency.sentMs.p50)} / ${fmt.int(latency.sentMs.p99)}`,
        pass: null,
      },
      {
        metric: 'Latency accepted by hub A → watcher on hub B, p50 / p99, ms',
        goal: '—',
        result: `${fmt.int(latency.acceptedMs.p50)} / ${fmt.int(latency.acceptedMs.p99)}`,
        pass: null,
      },
    ];
    process.stdout.write(
      `\nHeadway cluster benchmark — ${os.cpus().length} CPUs, ${fmt.dec(os.totalmem() / 2 ** 30)} GiB, ` +
        `${args.duration} s per load\n\n${renderTable(rows)}\n\n`,
    );
    if (latency.failed > 0) log(`latency: ${latency.failed} events were refused by hub A`);
    if (latency.skipped > 0)
      log(`latency: ${latency.skipped} events were not sent: hub A fell behind the offered rate`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
