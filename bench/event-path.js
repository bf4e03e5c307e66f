#!/usr/bin/env node
/**
 * What an event costs the hub on its way from a request to its subscribers,
 * without sockets (`node bench/event-path.js`; see docs/benchmarks.md).
 *
 * The low fan-out load's path in one process, so that a change to it can be
 * measured without the noise of a load generator sharing the cores: the real
 * server (`createServer`: Fastify, the hub, the SQLite store in a temporary
 * directory, default limits), 200 jobs, and `POST /v1/events` batches of 100
 * progress events of 100 jobs (round robin), sent with `app.inject` (routing,
 * JSON parsing, validation, the handler and the answer's serialization, without
 * a socket), one after the other with a turn of the event loop between them. Each
 * job has `--watchers` subscribers on the hub, each of which takes the event's
 * WebSocket frame in its state mode, as a connection's outbox does before it
 * writes. The sockets' writes, the same for every server, are left out.
 *
 * It reports the process's CPU per event (user and system, GC and the
 * checkpoint thread included), for each
 * `--tree` in turn (`--rounds` times): compare a change with a build of the
 * commit before it in the same run.
 *
 * Options: --batches=<n> per round (default 2,000, after 300 to warm up),
 * --rounds=<n> (default 3), --watchers=<n> per job (default 2),
 * --mode=delta|full (default delta), --tree=<built tree>[,<another>] (default this one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    batches: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    watchers: { type: 'string', default: '2' },
    mode: { type: 'string', default: 'delta' },
    tree: { type: 'string' },
    child: { type: 'string' },
  },
});
const BATCHES = Number(args.batches);
const WARM_UP = 300;
const JOBS = 200;
const PER_BATCH = 100;
const API_KEY = 'bench-event-path-0123456789abcdef';

if (args.child) {
  process.send(await measure(args.child));
  process.exit(0);
}

// Each tree is measured in a fresh child process, in turns, so that neither
// inherits the other's heap or compiled code.
const { fork } = await import('node:child_process');
const here = fileURLToPath(import.meta.url);
const trees = (args.tree ?? fileURLToPath(new URL('..', import.meta.url))).split(',').map((t) => resolve(t));
const runs = new Map(trees.map((t) => [t, []]));
for (let round = 0; round < Number(args.rounds); round++) {
  for (const tree of trees) {
    const child = fork(here, [...process.argv.slice(2), `--child=${tree}`], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const result = await new Promise((res, rej) => {
      child.once('message', res);
      child.once('exit', (code) => rej(new Error(`${tree}: exited with ${code}`)));
    });
    runs.get(tree).push(result);
    console.error(`round ${round + 1}, ${tree}: ${result.cpuUs.toFixed(2)} µs per event`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
console.log(
  `\nEvent path, ${args.mode} mode, ${args.watchers} subscribers per job, ${BATCHES} batches of ${PER_BATCH} events per round\n`,
);
console.log('| Tree | CPU µs per event (median) | user | system | every round |');
console.log('| --- | ---: | ---: | ---: | --- |');
for (const [tree, list] of runs) {
  const m = list.find((r) => r.cpuUs === median(list.map((x) => x.cpuUs)));
  console.log(
    `| ${tree} | ${m.cpuUs.toFixed(2)} | ${m.userUs.toFixed(2)} | ${m.systemUs.toFixed(2)} | ${list.map((r) => r.cpuUs.toFixed(2)).join(', ')} |`,
  );
}

async function measure(tree) {
  const dist = (path) => pathToFileURL(join(tree, 'packages/server/dist', path)).href;
  const { createServer } = await import(dist('server.js'));
  const { textFrame } = await import(dist('outbox-parts.js'));
  const dataDir = mkdtempSync(join(tmpdir(), 'headway-event-path-'));
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    jwtSecret: 'event-path-secret-0123456789abcdef0123',
    apiKeys: [API_KEY],
    logLevel: 'warn',
  });
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
  const post = async (url, body) => {
    const res = await server.app.inject({ method: 'POST', url, headers, payload: JSON.stringify(body) });
    if (res.statusCode !== 200 && res.statusCode !== 201)
      throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  };
  let delivered = 0;
  let bytes = 0;
  const delta = args.mode === 'delta';
  const subscriber = {
    deliver(d) {
      delivered++;
      bytes += d.framed(delta ? d.delta : d.native, textFrame).length;
    },
  };
  for (let j = 0; j < JOBS; j++) {
    await post('/v1/jobs', { id: `job-${j}`, owner: 'bench', name: `job ${j}` });
    for (let w = 0; w < Number(args.watchers); w++)
      server.hub.subscribe({ job: `job-${j}` }, { ...subscriber });
  }
  let next = 0;
  const batch = async () => {
    const events = [];
    for (let i = 0; i < PER_BATCH; i++, next++) {
      events.push({
        job: `job-${next % JOBS}`,
        kind: 'progress',
        percent: (Math.floor(next / JOBS) % 1000) / 10,
      });
    }
    await post('/v1/events', { events });
    await new Promise((res) => setImmediate(res));
  };
  for (let b = 0; b < WARM_UP; b++) await batch();
  const deliveredBefore = delivered;
  const cpu = process.cpuUsage();
  for (let b = 0; b < BATCHES; b++) await batch();
  const used = process.cpuUsage(cpu);
  const events = BATCHES * PER_BATCH;
  if (delivered - deliveredBefore !== events * Number(args.watchers)) {
    throw new Error(`delivered ${delivered - deliveredBefore} of ${events * Number(args.watchers)}`);
  }
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
  return {
    cpuUs: (used.user + used.system) / events,
    userUs: used.user / events,
    systemUs: used.system / events,
    bytesPerDelivery: bytes / delivered,
  };
}
