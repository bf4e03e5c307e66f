#!/usr/bin/env node
/**
 * Headway's benchmarks, in one run (`npm run bench`; see docs/benchmarks.md):
 *
 *   fan-out   — 2,000 WebSocket watchers over 200 jobs, 50,000 deliveries/s offered
 *               through the REST API for 10 s, against Headway (full state, and
 *               `delta`), the seeds' design (bench/seeds-ws.js), Socket.IO rooms
 *               (bench/socketio-rooms.js) and a plain `ws` baseline (bench/baseline-ws.js);
 *   lowfan    — the same servers at 2 watchers per job, 5,000 deliveries/s;
 *   connect   — connections per second, each with its own token and one subscription;
 *   idle      — RSS of the hub per idle, authenticated, subscribed connection;
 *   ingest    — events/s persisted through `POST /v1/jobs/:id/events`;
 *   ingest-full — the same with `--durability full` (SQLite syncs its WAL at every commit).
 *
 * Servers run as child processes and report their own CPU and memory; this
 * process is the load generator. Results go to stdout and bench/results/latest.{md,json};
 * no tracked file changes unless `--charts` redraws docs/images/bench-cpu.svg.
 *
 * Options: --only=fanout,delta,seeds,floor,socketio,baseline,lowfan,connect,idle,ingest
 *          --duration=<seconds of each load>   --idle-connections=<n>   --connections=<n>
 *          --before=<a built tree of another commit>: its hub too, on the same loads
 *          --servers=headway,headway-before,…   only these servers in the low fan-out and connect phases
 *          --repeat=<n>   the fan-out and connect loads: the servers take turns n times; the table shows the median
 *          --profile   CPU profiles of the servers during each load, in bench/results/profiles
 *          --charts    redraw docs/images/bench-cpu.svg
 *          --charts-from=<a latest.json>   redraw it from a saved run, without running anything
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startChild, stopAllChildren } from './lib/children.js';
import { createHttpClient, mapLimit } from './lib/http-client.js';
import { ingestEvents, offerEvents } from './lib/load.js';
import { machineBusySeconds } from './lib/machine-load.js';
import { fmt, percentiles, renderBarChart, renderTable } from './lib/report.js';
import { connectSocketIoSubscriber } from './lib/socketio-subscribers.js';
import {
  closeSubscribers,
  connectSeedSubscriber,
  connectSubscriber,
  connectSubscribers,
} from './lib/subscribers.js';
import { signViewerToken } from './lib/tokens.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const benchDir = join(root, 'bench');
const resultsDir = join(benchDir, 'results');
const hubScript = join(benchDir, 'hub-child.js');
const baselineScript = join(benchDir, 'baseline-ws.js');

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    connections: { type: 'string', default: '15000' },
    charts: { type: 'boolean', default: false },
    'charts-from': { type: 'string' },
    duration: { type: 'string', default: '10' },
    'idle-connections': { type: 'string', default: '5000' },
    profile: { type: 'boolean', default: false },
    before: { type: 'string' },
    servers: { type: 'string' },
    repeat: { type: 'string', default: '1' },
  },
});

/** Every server the bench compares: its script and how a watcher connects to it. */
const SERVERS = {
  headway: {
    label: 'Headway, full state',
    script: hubScript,
    connect: (url, spec) => connectSubscriber(wsUrlOf(url), spec),
  },
  'headway-delta': {
    label: 'Headway, delta',
    script: hubScript,
    connect: (url, spec) => connectSubscriber(wsUrlOf(url), spec, { delta: true }),
  },
  baseline: {
    label: 'plain ws, full state per subscriber',
    script: baselineScript,
    connect: (url, spec) => connectSubscriber(wsUrlOf(url), spec),
  },
  seeds: {
    label: "seeds' design (ws, JSON.stringify per subscriber)",
    script: join(benchDir, 'seeds-ws.js'),
    connect: connectSeedSubscriber,
  },
  floor: {
    label: 'floor: serialize and frame once, write raw',
    script: join(benchDir, 'seeds-ws.js'),
    env: { HEADWAY_BENCH_FLOOR: '1' },
    connect: connectSeedSubscriber,
  },
  socketio: {
    label: 'Socket.IO rooms',
    script: join(benchDir, 'socketio-rooms.js'),
    connect: connectSocketIoSubscriber,
  },
};
if (args.before) {
  // Another built tree (an earlier commit, say), measured on the same loads in the same run.
  const module = pathToFileURL(join(args.before, 'packages/server/dist/server.js')).href;
  SERVERS['headway-before'] = {
    ...SERVERS.headway,
    label: 'Headway before (--before)',
    env: { HEADWAY_BENCH_SERVER: module },
  };
  SERVERS['headway-before-delta'] = {
    ...SERVERS['headway-delta'],
    label: 'Headway before, delta (--before)',
    env: { HEADWAY_BENCH_SERVER: module },
  };
}
/** Phases and the servers each runs, in order. */
const PHASES = {
  fanout: ['headway'],
  delta: ['headway-delta'],
  seeds: ['seeds'],
  floor: ['floor'],
  socketio: ['socketio'],
  baseline: ['baseline'],
  before: args.before ? ['headway-before'] : [],
  'before-delta': args.before ? ['headway-before-delta'] : [],
  lowfan: [
    'headway',
    'headway-delta',
    'seeds',
    'floor',
    'socketio',
    ...(args.before ? ['headway-before', 'headway-before-delta'] : []),
  ],
  connect: ['headway', 'seeds', 'socketio', ...(args.before ? ['headway-before'] : [])],
  idle: [],
  ingest: [],
  'ingest-full': [],
};

const phases = new Set((args.only ?? Object.keys(PHASES).join(',')).split(','));
for (const phase of phases) {
  if (!(phase in PHASES)) throw new TypeError(`--only: unknown phase "${phase}"`);
}
// `--servers`: only these servers in the phases that compare several.
if (args.servers !== undefined) {
  const chosen = args.servers.split(',');
  for (const name of chosen) {
    if (!(name in SERVERS)) throw new TypeError(`--servers: unknown server "${name}"`);
  }
  for (const phase of ['lowfan', 'connect']) PHASES[phase] = PHASES[phase].filter((s) => chosen.includes(s));
}
for (const name of ['duration', 'idle-connections', 'connections']) {
  if (!(Number(args[name]) > 0)) throw new TypeError(`--${name} must be a positive number`);
}
const loadMs = Number(args.duration) * 1000;
const repeat = Number(args.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new TypeError('--repeat must be a positive integer');

/** The fan-out load, for Headway and the baseline alike. */
const FANOUT_LOAD = {
  jobs: 200,
  subscribersPerJob: 10,
  eventsPerJobPerSecond: 25, // 200 jobs × 25/s × 10 watchers = 50,000 deliveries/s
  durationMs: loadMs,
  batchSize: 100, // events per POST /v1/events
  maxInFlight: 8, // requests on the wire at once
  drainTimeoutMs: 10_000, // 10 seconds for the last deliveries after the last post
};
/** Low fan-out: one or two tabs per job, the common case. */
const LOWFAN = {
  ...FANOUT_LOAD,
  subscribersPerJob: 2,
  eventsPerJobPerSecond: 12.5, // 200 jobs × 12.5/s × 2 watchers = 5,000 deliveries/s
};
/** Connection set-up: each connection its own token and one subscription. */
const CONNECT = {
  connections: Number(args.connections),
  jobs: 1_000,
  concurrency: 200, // handshakes under way at once
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

async function startServer(kind, phase, { gc = false, durability = 'normal', maxConnections } = {}) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'headway-bench-'));
  tempDirs.add(dataDir);
  const execArgv = [];
  if (gc) execArgv.push('--expose-gc');
  const child = await startChild(SERVERS[kind]?.script ?? hubScript, {
    env: {
      HEADWAY_JWT_SECRET: secret,
      HEADWAY_API_KEYS: apiKey,
      HEADWAY_DATA_DIR: dataDir,
      HEADWAY_DURABILITY: durability,
      ...(maxConnections ? { HEADWAY_MAX_CONNECTIONS: String(maxConnections) } : {}),
      ...SERVERS[kind]?.env,
    },
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

async function waitUntil(predicate, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate() && performance.now() < deadline) await sleep(20);
  return predicate();
}

// ---------------------------------------------------------------------------

async function runFanOut(kind, FANOUT = FANOUT_LOAD, phase = 'fanout') {
  log(`${phase} (${kind}): starting the server`);
  const server = await startServer(kind, phase, {});
  const client = createHttpClient(server.child.url, { apiKey, maxSockets: FANOUT.maxInFlight });
  let subs = [];
  try {
    const jobs = jobIds('fan', FANOUT.jobs);
    await createJobs(client, jobs);
    const watchers = FANOUT.jobs * FANOUT.subscribersPerJob;
    log(`fan-out (${kind}): connecting ${fmt.int(watchers)} watchers`);
    subs = await connectSubscribers(wsUrlOf(server.child.url), viewerSpecs(jobs, watchers, 'fan'), {
      connect: (spec) => SERVERS[kind].connect(server.child.url, spec),
    });
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
      // The server's own event-loop delay over the load (10 ms resolution): the pauses behind a p99.
      serverLoopDelayMs: after.lag,
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

/** Connections per second from the first dial to the last answered subscription, each with its own token. */
async function runConnect(kind) {
  log(`connect (${kind}): starting the server`);
  // As an operator would for this many sockets: `--max-connections` above the load.
  const server = await startServer(kind, 'connect', { maxConnections: CONNECT.connections + 1_000 });
  const client = createHttpClient(server.child.url, { apiKey, maxSockets: 16 });
  let subs = [];
  try {
    const jobs = jobIds('con', CONNECT.jobs);
    await createJobs(client, jobs);
    const specs = viewerSpecs(jobs, CONNECT.connections, 'con');
    log(`connect (${kind}): ${fmt.int(specs.length)} connections, ${CONNECT.concurrency} at a time`);
    await server.startProfile();
    const before = await server.child.stats();
    const ownBefore = process.cpuUsage();
    const started = performance.now();
    subs = await connectSubscribers(wsUrlOf(server.child.url), specs, {
      concurrency: CONNECT.concurrency,
      connect: (spec) => SERVERS[kind].connect(server.child.url, spec),
    });
    const seconds = (performance.now() - started) / 1000;
    const after = await server.child.stats();
    const own = process.cpuUsage(ownBefore);
    await server.stopProfile();
    const cpuSeconds = after.cpuSeconds - before.cpuSeconds;
    const result = {
      connections: subs.length,
      seconds,
      connectsPerSecond: subs.length / seconds,
      serverCpuUsPerConnect: (cpuSeconds * 1e6) / subs.length,
      serverCpuShare: cpuSeconds / seconds,
      loadGeneratorCpuShare: (own.user + own.system) / 1e6 / seconds,
      serverRssBytes: after.memory.rss,
    };
    log(`connect (${kind}):`, JSON.stringify(result));
    return result;
  } finally {
    log(`connect (${kind}): closing`);
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

async function runIngest(durability = 'normal') {
  log(`ingest: starting the hub (durability ${durability})`);
  const server = await startServer('headway', durability === 'full' ? 'ingest-full' : 'ingest', {
    durability,
  });
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
      durability,
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
  const full = r['ingest-full'];
  if (full?.error) failed('Hub: REST ingest, --durability full', '—', full);
  else if (full) {
    const ratio =
      ingest && !ingest.error ? ` (${fmt.dec(full.eventsPerSecond / ingest.eventsPerSecond)} × normal)` : '';
    rows.push({
      metric: 'Hub: REST ingest with --durability full (WAL synced at every commit)',
      goal: '—',
      result: `${fmt.int(full.eventsPerSecond)} events/s${ratio} (p99 ${fmt.dec(full.latencyMs.p99)} ms per request)`,
      pass: full.failedRequests === 0 ? null : false,
    });
  }
  return rows;
}

/**
 * Of a load's runs (`--repeat`), the one of median `metric` (CPU per delivery by
 * default), with every run's value in `<metric>Runs`.
 */
function median(list, name, metric = 'serverCpuMsPer1kDeliveries') {
  const values = list.map((r) => r[metric]);
  if (list.length > 1) log(`${name}: ${metric} ${values.map((x) => x.toFixed(2)).join(', ')}`);
  const sorted = [...list].sort((a, b) => a[metric] - b[metric]);
  return { ...sorted[(sorted.length - 1) >> 1], [`${metric}Runs`]: values };
}

/** `run` for each of `kinds` in turn, `--repeat` times; per server, the run of median `metric`. */
async function inTurns(name, kinds, run, metric) {
  const runs = {};
  for (let round = 0; round < repeat; round++) {
    for (const kind of kinds) (runs[kind] ??= []).push(await run(kind));
  }
  const out = {};
  for (const [kind, list] of Object.entries(runs)) out[kind] = median(list, `${name} (${kind})`, metric);
  return out;
}

/** Cores used by other processes during a load above which the run is flagged as noisy. */
const NOISY_OTHER_CORES = 0.25;

/** What else ran while the load ran: on a shared machine, read this before the numbers. */
/** Side by side, on the same loads: the servers of the comparison, and the goals as ratios to the seeds' design. */
function comparison(r) {
  const high = {
    headway: r.fanout,
    'headway-delta': r.delta,
    seeds: r.seeds,
    floor: r.floor,
    socketio: r.socketio,
  };
  if (args.before) {
    high['headway-before'] = r.before;
    high['headway-before-delta'] = r['before-delta'];
  }
  const low = r.lowfan ?? {};
  const con = r.connect ?? {};
  const us = (x) => (x?.serverCpuMsPer1kDeliveries ? fmt.dec(x.serverCpuMsPer1kDeliveries) : '—');
  const lat = (x) => (x?.latencyMs ? `${fmt.dec(x.latencyMs.p50)} / ${fmt.dec(x.latencyMs.p99)}` : '—');
  const rows = Object.keys(high).map((kind) => ({
    server: SERVERS[kind].label,
    cpu: us(high[kind]),
    latency: lat(high[kind]),
    missing:
      high[kind]?.missing === undefined
        ? '—'
        : `${fmt.int(high[kind].missing)} / ${fmt.int(high[kind].collapsed)}`,
    bytes: high[kind]?.averageMessageBytes ? fmt.int(high[kind].averageMessageBytes) : '—',
    lowCpu: us(low[kind]),
    lowLatency: lat(low[kind]),
    connects: con[kind]?.connectsPerSecond ? fmt.int(con[kind].connectsPerSecond) : '—',
    connectCpu: con[kind]?.serverCpuUsPerConnect ? fmt.int(con[kind].serverCpuUsPerConnect) : '—',
  }));
  const header =
    '| Server | CPU µs per delivery (50,000/s, 10 per job) | Latency p50 / p99, ms | Missing / collapsed | Bytes per message | CPU µs per delivery (5,000/s, 2 per job) | Latency p50 / p99 at 5,000/s, ms | Connects/s (own token, 1 subscription) | Server CPU µs per connect |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n';
  const body = rows
    .map(
      (x) =>
        `| ${x.server} | ${x.cpu} | ${x.latency} | ${x.missing} | ${x.bytes} | ${x.lowCpu} | ${x.lowLatency} | ${x.connects} | ${x.connectCpu} |`,
    )
    .join('\n');
  const ratio = (a, b) => (a && b ? `${fmt.dec(a / b)}×` : '—');
  const seeds = high.seeds?.serverCpuMsPer1kDeliveries;
  const ratios = [
    `full state CPU per delivery ÷ seeds: ${ratio(high.headway?.serverCpuMsPer1kDeliveries, seeds)} (goal ≤ 1)`,
    `delta CPU per delivery ÷ seeds: ${ratio(high['headway-delta']?.serverCpuMsPer1kDeliveries, seeds)} (goal ≤ 0.9)`,
    `floor CPU per delivery ÷ seeds: ${ratio(high.floor?.serverCpuMsPer1kDeliveries, seeds)} (one write per delivery and nothing else)`,
    `delta bytes per progress message: ${high['headway-delta']?.averageMessageBytes ? fmt.int(high['headway-delta'].averageMessageBytes) : '—'} (goal ≤ 250)`,
    `low fan-out, delta CPU per delivery ÷ seeds: ${ratio(low['headway-delta']?.serverCpuMsPer1kDeliveries, low.seeds?.serverCpuMsPer1kDeliveries)} (goal ≤ 1.3); p99 ÷ seeds: ${ratio(low['headway-delta']?.latencyMs?.p99, low.seeds?.latencyMs?.p99)} (goal ≤ 1)`,
    `connects/s: ${con.headway?.connectsPerSecond ? fmt.int(con.headway.connectsPerSecond) : '—'} at ${fmt.int(CONNECT.connections)} connections (goal ≥ 4,000)`,
  ];
  return `\nSide by side, the same loads (CPU per delivery = server CPU ÷ deliveries):\n\n${header}${body}\n\n${ratios.map((l) => `- ${l}`).join('\n')}\n`;
}

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
    // The fan-out loads, each server in turn; with --repeat=n, n rounds of turns,
    // and each line shows the run of median CPU.
    const fanOut = [
      'fanout',
      'delta',
      'before',
      'before-delta',
      'seeds',
      'floor',
      'socketio',
      'baseline',
    ].filter((phase) => PHASES[phase].length > 0);
    const runs = {};
    for (let round = 0; round < repeat; round++) {
      for (const phase of fanOut) {
        await attempt(phase, async () => {
          (runs[phase] ??= []).push(await runFanOut(PHASES[phase][0]));
          return median(runs[phase], phase);
        });
      }
    }
    await attempt('lowfan', () =>
      inTurns('lowfan', PHASES.lowfan, (kind) => runFanOut(kind, LOWFAN, 'lowfan')),
    );
    await attempt('connect', () => inTurns('connect', PHASES.connect, runConnect, 'connectsPerSecond'));
    await attempt('idle', runIdleMemory);
    await attempt('ingest', () => runIngest('normal'));
    await attempt('ingest-full', () => runIngest('full'));
  } finally {
    await stopAllChildren();
  }

  const m = machine();
  const table = renderTable(tableRows(results));
  const heading = `Headway benchmarks, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC — ${m.cpus} × ${m.cpuModel}, Node ${m.node}, ${m.platform}`;
  const markdown = `${heading}\n\n${table}\n${comparison(results)}\n${conditions(results)}`;
  process.stdout.write(`\n${markdown}`);
  writeFileSync(join(resultsDir, 'latest.md'), markdown);
  writeFileSync(
    join(resultsDir, 'latest.json'),
    `${JSON.stringify({ startedAt: started.toISOString(), machine: m, settings: { FANOUT: FANOUT_LOAD, LOWFAN, CONNECT, IDLE, INGEST, GOALS }, results }, null, 2)}\n`,
  );
  // The chart in the docs is tracked: it is redrawn only when asked (`--charts`).
  if (args.charts) drawChart(results);
  log(`results written to ${join('bench', 'results', 'latest.md')} and latest.json`);
}

if (args['charts-from']) {
  drawChart(JSON.parse(readFileSync(args['charts-from'], 'utf8')).results);
  log('docs/images/bench-cpu.svg redrawn from', args['charts-from']);
} else {
  await main();
}

/** The bars of the CPU chart: every server the fan-out load measured, cheapest first. */
function drawChart(results) {
  const labels = {
    fanout: 'Headway, full state',
    delta: 'Headway, delta',
    before: 'Headway, earlier',
    seeds: "seeds' design",
    floor: 'floor (write raw)',
    socketio: 'Socket.IO rooms',
    baseline: 'plain ws baseline',
  };
  const bars = Object.entries(labels)
    .filter(([phase]) => results[phase]?.serverCpuMsPer1kDeliveries)
    .map(([phase, label]) => ({ label, value: results[phase].serverCpuMsPer1kDeliveries }))
    .sort((a, b) => a.value - b.value);
  const fan = results.fanout;
  if (bars.length === 0 || !fan?.watchers) return;
  mkdirSync(join(root, 'docs/images'), { recursive: true });
  writeFileSync(
    join(root, 'docs/images/bench-cpu.svg'),
    renderBarChart({
      title: `Server CPU per 1,000 deliveries (${fmt.int(fan.watchers)} watchers, ${fmt.int(fan.scheduledDeliveriesPerSecond)}/s offered)`,
      unit: 'ms',
      bars,
    }),
  );
}
