#!/usr/bin/env node
/**
 * Headway's benchmarks, in one run (`npm run bench`; see docs/benchmarks.md):
 *
 *   1. fan-out    — 2,000 WebSocket watchers over 200 jobs, 50,000 deliveries/s offered
 *                   through the REST API for 10 s: every delivery arrives; hub CPU per
 *                   1,000 deliveries;
 *   2. baseline   — the same load against a plain `ws` server that serializes once per
 *                   subscriber and stores nothing (bench/baseline-ws.js);
 *   3. idle       — RSS of the hub per idle, authenticated, subscribed connection;
 *   4. ingest     — events/s persisted through `POST /v1/jobs/:id/events`.
 *
 * Servers run as child processes (bench/hub-child.js, bench/baseline-ws.js) and
 * report their own CPU and memory; this process is the load generator. Results go
 * to stdout, bench/results/latest.{md,json} and docs/images/bench-cpu.svg.
 *
 * Options: --only=fanout,baseline,idle,ingest   --duration=<seconds of each load>
 *          --idle-connections=<n>
 *          --profile   CPU profiles of the servers during each load, in bench/results/profiles
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startChild, stopAllChildren } from './lib/children.js';
import { createHttpClient, mapLimit } from './lib/http-client.js';
import { ingestEvents, offerEvents } from './lib/load.js';
import { machineBusySeconds } from './lib/machine-load.js';
import { fmt, renderBarChart, renderTable } from './lib/report.js';
import { closeSubscribers, connectSubscribers } from './lib/subscribers.js';
import { signViewerToken } from './lib/tokens.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const benchDir = join(root, 'bench');
const resultsDir = join(benchDir, 'results');
const hubScript = join(benchDir, 'hub-child.js');
const baselineScript = join(benchDir, 'baseline-ws.js');

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'fanout,baseline,idle,ingest' },
    charts: { type: 'boolean', default: false },
    duration: { type: 'string', default: '10' },
    'idle-connections': { type: 'string', default: '5000' },
    profile: { type: 'boolean', default: false },
  },
});
const phases = new Set(args.only.split(','));
for (const phase of phases) {
  if (!['fanout', 'baseline', 'idle', 'ingest'].includes(phase))
    throw new TypeError(`--only: unknown phase "${phase}"`);
}
for (const name of ['duration', 'idle-connections']) {
  if (!(Number(args[name]) > 0)) throw new TypeError(`--${name} must be a positive number`);
}
const loadMs = Number(args.duration) * 1000;

/** The fan-out load, for Headway and the baseline alike. */
const FANOUT = {
  jobs: 200,
  subscribersPerJob: 10,
  eventsPerJobPerSecond: 25, // 200 jobs × 25/s × 10 watchers = 50,000 deliveries/s
  durationMs: loadMs,
  batchSize: 100, // events per POST /v1/events
  maxInFlight: 8, // requests on the wire at once
  drainTimeoutMs: 10_000, // 10 seconds for the last deliveries after the last post
};
const IDLE = {
  connections: Number(args['idle-connections']),
  jobs: 100,
  warmupConnections: 50, // opened and closed first, so lazily built code and buffers are in the 0-connection figure
  settleMs: 2_000, // 2 seconds between the last subscribe and the measurement
};
const INGEST = {
  jobs: 100,
  batchSize: 100, // events per POST /v1/jobs/:id/events
  concurrency: 16, // requests in flight
  durationMs: loadMs,
};
const GOALS = {
  idleBytesPerConnection: 12 * 1024, // 12 KiB
  ingestEventsPerSecond: 20_000,
  /**
   * Share of the offered rate the deliveries must reach, counted from the first post
   * to the last delivery: 0.95 leaves half a second at the end of a 10 s run for the
   * last events to arrive. A server that does not keep up falls further behind every
   * second and misses it by far.
   */
  deliveryRateShare: 0.95,
};

const secret = randomBytes(32).toString('base64url');
const apiKey = `bench-${randomBytes(16).toString('hex')}`;

/** Temporary data directories, removed at exit whatever happens. */
const tempDirs = new Set();
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    process.exit(130);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...parts) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...parts);

async function startServer(kind, phase, { gc = false } = {}) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-bench-'));
  tempDirs.add(dataDir);
  const execArgv = [];
  if (gc) execArgv.push('--expose-gc');
  const child = await startChild(kind === 'headway' ? hubScript : baselineScript, {
    env: { HEADWAY_JWT_SECRET: secret, HEADWAY_API_KEYS: apiKey, HEADWAY_DATA_DIR: dataDir },
    execArgv,
    logFile: join(resultsDir, `${phase}-${kind}.log`),
  });
  return {
    child,
    /** With --profile: profile the server from now until `stopProfile`. */
    async startProfile() {
      if (args.profile) await child.startProfile();
    },
    async stopProfile() {
      if (args.profile) await child.stopProfile(join(resultsDir, 'profiles', `${phase}-${kind}.cpuprofile`));
    },
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
      tempDirs.delete(dataDir);
    },
  };
}

const wsUrlOf = (httpUrl) => `${httpUrl.replace(/^http/, 'ws')}/v1/ws`;
const jobIds = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

async function createJobs(client, ids) {
  await mapLimit(ids, 16, (id) => client.ok('POST', '/v1/jobs', { id, owner: 'bench', name: `bench ${id}` }));
}

/** One browser-like watcher per subscriber: its own user, a token scoped to its job. */
function viewerSpecs(jobs, count, prefix) {
  return Array.from({ length: count }, (_, v) => {
    const job = jobs[v % jobs.length];
    return { job, token: signViewerToken(secret, { user: `${prefix}-viewer-${v}`, jobs: [job] }) };
  });
}

/** p50, p99 and max of a list of numbers. */
function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { samples: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}

async function waitUntil(predicate, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate() && performance.now() < deadline) await sleep(20);
  return predicate();
}

// ---------------------------------------------------------------------------

async function runFanOut(kind) {
  log(`fan-out (${kind}): starting the server`);
  const server = await startServer(kind, 'fanout', {});
  const client = createHttpClient(server.child.url, { apiKey, maxSockets: FANOUT.maxInFlight });
  let subs = [];
  try {
    const jobs = jobIds('fan', FANOUT.jobs);
    await createJobs(client, jobs);
    const watchers = FANOUT.jobs * FANOUT.subscribersPerJob;
    log(`fan-out (${kind}): connecting ${fmt.int(watchers)} watchers`);
    subs = await connectSubscribers(wsUrlOf(server.child.url), viewerSpecs(jobs, watchers, 'fan'));
    await sleep(500);
    for (const s of subs) s.resetCounters();

    log(
      `fan-out (${kind}): offering ${fmt.int(FANOUT.eventsPerJobPerSecond * FANOUT.jobs * FANOUT.subscribersPerJob)} deliveries/s for ${FANOUT.durationMs / 1000} s`,
    );
    await server.startProfile();
    const before = await server.child.stats();
    const ownBefore = process.cpuUsage();
    const busyBefore = machineBusySeconds();
    const offer = await offerEvents(client, { ...FANOUT, jobs });
    const expectedOf = (s) => offer.accepted.get(s.job);
    await waitUntil(() => subs.every((s) => s.received + s.skipped >= expectedOf(s)), FANOUT.drainTimeoutMs);
    const after = await server.child.stats();
    const own = process.cpuUsage(ownBefore);
    const busy = machineBusySeconds() - busyBefore;
    await server.stopProfile();

    let offered = 0;
    let delivered = 0;
    let collapsed = 0;
    let duplicates = 0;
    let bytes = 0;
    let lastAt = offer.startedAt;
    const latencies = [];
    for (const s of subs) {
      for (const l of s.latencies) latencies.push(l);
      offered += expectedOf(s);
      delivered += s.received;
      collapsed += s.skipped;
      duplicates += s.duplicates;
      bytes += s.bytes;
      if (s.lastAt > lastAt) lastAt = s.lastAt;
    }
    const seconds = (lastAt - offer.startedAt) / 1000;
    const cpuSeconds = after.cpuSeconds - before.cpuSeconds;
    const ownSeconds = (own.user + own.system) / 1e6;
    const result = {
      watchers,
      jobs: FANOUT.jobs,
      scheduledDeliveriesPerSecond: offer.scheduledPerSecond * FANOUT.subscribersPerJob,
      offeredDeliveriesPerSecond: (offer.events * FANOUT.subscribersPerJob) / offer.sendSeconds,
      eventsPosted: offer.events,
      eventsRejected: offer.rejectedEvents,
      failedRequests: offer.failedRequests,
      firstError: offer.firstError,
      offered,
      delivered,
      missing: offered - delivered,
      collapsed,
      duplicates,
      closedByServer: subs.filter((s) => s.closeCode !== null).length,
      seconds,
      deliveriesPerSecond: delivered / seconds,
      tailSeconds: (lastAt - offer.lastSentAt) / 1000,
      latencyMs: percentiles(latencies),
      serverCpuSeconds: cpuSeconds,
      serverSystemCpuSeconds: after.systemSeconds - before.systemSeconds,
      serverCpuMsPer1kDeliveries: delivered > 0 ? (cpuSeconds * 1000) / (delivered / 1000) : null,
      serverCpuShare: cpuSeconds / seconds,
      serverRssBytes: after.memory.rss,
      loadGeneratorCpuShare: ownSeconds / seconds,
      otherProcessesCpuShare: busy === null ? null : (busy - cpuSeconds - ownSeconds) / seconds,
      averageMessageBytes: delivered + duplicates > 0 ? bytes / (delivered + duplicates) : 0,
    };
    log(`fan-out (${kind}):`, JSON.stringify(result));
    return result;
  } finally {
    await closeSubscribers(subs);
    client.close();
    await server.stop();
  }
}

async function runIdleMemory() {
  log('idle memory: starting the hub with --expose-gc');
  const server = await startServer('headway', 'idle', { gc: true });
  const client = createHttpClient(server.child.url, { apiKey, maxSockets: 16 });
  const wsUrl = wsUrlOf(server.child.url);
  let subs = [];
  try {
    const jobs = jobIds('idle', IDLE.jobs);
    await createJobs(client, jobs);
    await closeSubscribers(
      await connectSubscribers(wsUrl, viewerSpecs(jobs, IDLE.warmupConnections, 'warm')),
    );
    await sleep(500);
    await server.child.stats({ gc: true });
    await sleep(IDLE.settleMs / 2);
    const empty = await server.child.stats({ gc: true });

    log(`idle memory: opening ${fmt.int(IDLE.connections)} subscribed connections`);
    subs = await connectSubscribers(wsUrl, viewerSpecs(jobs, IDLE.connections, 'idle'));
    await sleep(IDLE.settleMs);
    const full = await server.child.stats({ gc: true });
    const per = (key) => (full.memory[key] - empty.memory[key]) / IDLE.connections;
    const result = {
      connections: IDLE.connections,
      jobs: IDLE.jobs,
      rssEmptyBytes: empty.memory.rss,
      rssFullBytes: full.memory.rss,
      rssBytesPerConnection: per('rss'),
      heapUsedBytesPerConnection: per('heapUsed'),
      externalBytesPerConnection: per('external'),
      closedByServer: subs.filter((s) => s.closeCode !== null).length,
    };
    log('idle memory:', JSON.stringify(result));
    return result;
  } finally {
    await closeSubscribers(subs);
    client.close();
    await server.stop();
  }
}

async function runIngest() {
  log('ingest: starting the hub');
  const server = await startServer('headway', 'ingest', {});
  const client = createHttpClient(server.child.url, { apiKey, maxSockets: INGEST.concurrency });
  try {
    const jobs = jobIds('ingest', INGEST.jobs);
    await createJobs(client, jobs);
    log(
      `ingest: ${INGEST.concurrency} lanes posting batches of ${INGEST.batchSize} for ${INGEST.durationMs / 1000} s`,
    );
    await server.startProfile();
    const before = await server.child.stats();
    const ownBefore = process.cpuUsage();
    const busyBefore = machineBusySeconds();
    const run = await ingestEvents(client, { ...INGEST, jobs });
    const after = await server.child.stats();
    await server.stopProfile();
    const own = process.cpuUsage(ownBefore);
    const busy = machineBusySeconds() - busyBefore;
    const cpuSeconds = after.cpuSeconds - before.cpuSeconds;
    const ownSeconds = (own.user + own.system) / 1e6;
    const result = {
      ...run,
      jobs: INGEST.jobs,
      batchSize: INGEST.batchSize,
      concurrency: INGEST.concurrency,
      serverCpuSeconds: cpuSeconds,
      serverSystemCpuSeconds: after.systemSeconds - before.systemSeconds,
      serverCpuMsPer1kEvents: run.acknowledged > 0 ? (cpuSeconds * 1000) / (run.acknowledged / 1000) : null,
      serverCpuShare: cpuSeconds / run.seconds,
      loadGeneratorCpuShare: ownSeconds / run.seconds,
      otherProcessesCpuShare: busy === null ? null : (busy - cpuSeconds - ownSeconds) / run.seconds,
    };
    log('ingest:', JSON.stringify(result));
    return result;
  } finally {
    client.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------

function tableRows(r) {
  const rows = [];
  const failed = (metric, goal, phase) =>
    rows.push({
      metric,
      goal,
      result: `error: ${String(phase.error).split('\n')[0].slice(0, 160)}`,
      pass: false,
    });
  const fan = r.fanout;
  const base = r.baseline;
  if (fan?.error) failed('Fan-out: every delivery arrives', '0 missing', fan);
  else if (fan) {
    rows.push({
      metric: `Fan-out: every delivery arrives (${fmt.int(fan.watchers)} watchers, ${fan.jobs} jobs)`,
      goal: '0 missing',
      result: `${fmt.int(fan.delivered)} of ${fmt.int(fan.offered)} delivered; ${fmt.int(fan.missing)} missing, ${fmt.int(fan.collapsed)} collapsed, ${fmt.int(fan.duplicates)} duplicated`,
      pass: fan.missing === 0 && fan.duplicates === 0 && fan.offered > 0 && fan.failedRequests === 0,
    });
    rows.push({
      metric: 'Fan-out: deliveries per second',
      goal: `≥ ${GOALS.deliveryRateShare * 100}% of ${fmt.int(fan.scheduledDeliveriesPerSecond)}/s offered`,
      result: `${fmt.int(fan.deliveriesPerSecond)}/s (posted at ${fmt.int(fan.offeredDeliveriesPerSecond)}/s); latency p50 ${fmt.int(fan.latencyMs.p50)} ms, p99 ${fmt.int(fan.latencyMs.p99)} ms`,
      pass: fan.deliveriesPerSecond >= GOALS.deliveryRateShare * fan.scheduledDeliveriesPerSecond,
    });
  }
  if (base?.error) failed('Baseline (plain ws): CPU per 1,000 deliveries', 'reference', base);
  else if (base) {
    rows.push({
      metric: 'Baseline (plain ws, no store): CPU per 1,000 deliveries',
      goal: 'reference',
      result: `${fmt.dec(base.serverCpuMsPer1kDeliveries)} ms (${fmt.int(base.deliveriesPerSecond)}/s, ${fmt.int(base.missing)} missing)`,
      pass: null,
    });
  }
  if (fan && !fan.error) {
    const haveBase = base && !base.error;
    rows.push({
      metric: 'Hub: CPU per 1,000 deliveries',
      goal: haveBase ? `≤ baseline (${fmt.dec(base.serverCpuMsPer1kDeliveries)} ms)` : '≤ baseline',
      result: `${fmt.dec(fan.serverCpuMsPer1kDeliveries)} ms (${fmt.int(fan.serverCpuShare * 100)}% of a core)`,
      pass: haveBase ? fan.serverCpuMsPer1kDeliveries <= base.serverCpuMsPer1kDeliveries : null,
    });
  }
  const idle = r.idle;
  if (idle?.error) failed('Hub: memory per idle connection', '≤ 12 KiB', idle);
  else if (idle) {
    rows.push({
      metric: `Hub: memory per idle connection (RSS, ${fmt.int(idle.connections)} connections)`,
      goal: `≤ ${fmt.kib(GOALS.idleBytesPerConnection)}`,
      result: `${fmt.kib(idle.rssBytesPerConnection)} (heap ${fmt.kib(idle.heapUsedBytesPerConnection)})`,
      pass: idle.rssBytesPerConnection <= GOALS.idleBytesPerConnection && idle.closedByServer === 0,
    });
  }
  const ingest = r.ingest;
  if (ingest?.error) failed('Hub: REST ingest', '≥ 20,000 events/s', ingest);
  else if (ingest) {
    rows.push({
      metric: `Hub: REST ingest (batches of ${ingest.batchSize}, ${ingest.concurrency} in flight, ${ingest.jobs} jobs)`,
      goal: `≥ ${fmt.int(GOALS.ingestEventsPerSecond)} events/s`,
      result: `${fmt.int(ingest.eventsPerSecond)} events/s (p99 ${fmt.dec(ingest.latencyMs.p99)} ms per request)`,
      pass: ingest.eventsPerSecond >= GOALS.ingestEventsPerSecond && ingest.failedRequests === 0,
    });
  }
  return rows;
}

/** Cores used by other processes during a load above which the run is flagged as noisy. */
const NOISY_OTHER_CORES = 0.25;

/** What else ran while the load ran: on a shared machine, read this before the numbers. */
function conditions(r) {
  const parts = [];
  for (const [name, label] of [
    ['fanout', 'Headway fan-out'],
    ['baseline', 'baseline fan-out'],
    ['ingest', 'ingest'],
  ]) {
    const p = r[name];
    if (!p || p.error || p.otherProcessesCpuShare == null) continue;
    parts.push(
      `${label}: server ${fmt.dec(p.serverCpuShare)}, load generator ${fmt.dec(p.loadGeneratorCpuShare)}, other processes ${fmt.dec(Math.max(0, p.otherProcessesCpuShare))}`,
    );
  }
  if (parts.length === 0) return '';
  const worst = Math.max(...['fanout', 'baseline', 'ingest'].map((n) => r[n]?.otherProcessesCpuShare ?? 0));
  const warning =
    worst > NOISY_OTHER_CORES
      ? `\n**Other processes used up to ${fmt.dec(worst)} cores during a load: the machine was not idle, so these numbers are noisy. Rerun on an idle machine.**\n`
      : '';
  return `\nCores busy during each load — ${parts.join('; ')}.\n${warning}`;
}

function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
  };
}

async function main() {
  if (!existsSync(join(root, 'packages/server/dist/server.js'))) {
    console.error('The hub is not built: run `npm run build` (or `npm ci`, which builds) first.');
    process.exitCode = 1;
    return;
  }
  mkdirSync(resultsDir, { recursive: true });
  const started = new Date();
  const results = {};
  const attempt = async (name, run) => {
    if (!phases.has(name)) return;
    try {
      results[name] = await run();
    } catch (err) {
      log(`${name} failed:`, err);
      results[name] = { error: err instanceof Error ? err.message : String(err) };
    }
  };
  try {
    await attempt('fanout', () => runFanOut('headway'));
    await attempt('baseline', () => runFanOut('baseline'));
    await attempt('idle', runIdleMemory);
    await attempt('ingest', runIngest);
  } finally {
    await stopAllChildren();
  }

  const m = machine();
  const table = renderTable(tableRows(results));
  const heading = `Headway benchmarks, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC — ${m.cpus} × ${m.cpuModel}, Node ${m.node}, ${m.platform}`;
  const markdown = `${heading}\n\n${table}\n${conditions(results)}`;
  process.stdout.write(`\n${markdown}`);
  writeFileSync(join(resultsDir, 'latest.md'), markdown);
  writeFileSync(
    join(resultsDir, 'latest.json'),
    `${JSON.stringify({ startedAt: started.toISOString(), machine: m, settings: { FANOUT, IDLE, INGEST, GOALS }, results }, null, 2)}\n`,
  );
  const fan = results.fanout;
  const base = results.baseline;
  // The chart in the docs is tracked: it is redrawn only when asked (`--charts`).
  if (args.charts && fan?.serverCpuMsPer1kDeliveries && base?.serverCpuMsPer1kDeliveries) {
    mkdirSync(join(root, 'docs/images'), { recursive: true });
    writeFileSync(
      join(root, 'docs/images/bench-cpu.svg'),
      renderBarChart({
        title: `Server CPU per 1,000 deliveries (${fmt.int(fan.watchers)} watchers, ${fmt.int(fan.scheduledDeliveriesPerSecond)}/s offered)`,
        unit: 'ms',
        bars: [
          { label: 'Headway', value: fan.serverCpuMsPer1kDeliveries },
          { label: 'plain ws baseline', value: base.serverCpuMsPer1kDeliveries },
        ],
      }),
    );
  }
  log(`results written to ${join('bench', 'results', 'latest.md')} and latest.json`);
}

await main();
