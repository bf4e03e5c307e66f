#!/usr/bin/env node
/**
 * The cost of the webhook outbox on the commit path (`node bench/webhook-outbox.js`;
 * see docs/benchmarks.md). Each store commits the same closed-loop load — batches
 * of 100 jobs, each with 10 progress events and, every tenth batch, a `completed`
 * event ending the jobs — in three set-ups measured in one run, alternating rounds
 * so that other work on the machine weighs on all alike:
 *
 *   none      — no webhook registered;
 *   unmatched — three webhooks for `failed` and `cancelled`: no event matches, so
 *               this is what webhooks cost the events they do not want;
 *   outcomes  — three webhooks for outcomes: progress events match none, each
 *               `completed` writes 3 deliveries (each with a copy of the job's state);
 *   every     — one webhook for `progress` and `completed`: every event writes one.
 *
 * Reported: events committed per second and the ratio to `none`. The load is
 * pessimistic for `outcomes`: 10 progress events per job, where real jobs report
 * hundreds before they end. Needs a built tree;
 * PostgreSQL (HEADWAY_BENCH_POSTGRES_URL) is measured when it answers. Options:
 * --duration=<seconds per set-up and store> (default 6), --rounds=<n> (default 3).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresStore } from '../packages/server/dist/store/postgres.js';
import { SqliteStore } from '../packages/server/dist/store/sqlite.js';
import { fmt, renderTable } from './lib/report.js';

const POSTGRES_URL = process.env.HEADWAY_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const { values: args } = parseArgs({
  options: { duration: { type: 'string', default: '6' }, rounds: { type: 'string', default: '3' } },
});
const DURATION_MS = Number(args.duration) * 1000;
const ROUNDS = Number(args.rounds);
const JOBS = 100;
const EVENTS = 10;
const SETUPS = {
  none: [],
  unmatched: [['failed', 'cancelled'], ['failed'], ['cancelled']],
  outcomes: [['completed', 'failed', 'cancelled'], ['completed'], ['failed', 'cancelled']],
  every: [['progress', 'completed']],
};

const iso = (ms) => new Date(ms).toISOString();

function state(id, seq, status, at) {
  return {
    id,
    owner: 'bench',
    name: id,
    parent: null,
    status,
    progress: { percent: Math.min(100, seq) },
    stage: null,
    stages: [],
    message: null,
    eta: null,
    metadata: {},
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: iso(at),
    updatedAt: iso(at),
    startedAt: iso(at),
    finishedAt: status === 'completed' ? iso(at) : null,
    seq,
    estimator: null,
  };
}

/** Commits for `ms`; returns events committed per second. */
async function load(store, ms) {
  let batch = 0;
  let events = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    const prefix = `b${batch}-${randomBytes(3).toString('hex')}`;
    const at = Date.now();
    const writes = [];
    for (let j = 0; j < JOBS; j++) {
      const id = `${prefix}-${j}`;
      const evs = [{ job: id, seq: 1, kind: 'created', data: { owner: 'bench' }, at: iso(at) }];
      for (let e = 2; e <= EVENTS + 1; e++)
        evs.push({ job: id, seq: e, kind: 'progress', data: { percent: e }, at: iso(at) });
      const done = batch % 10 === 9;
      if (done) evs.push({ job: id, seq: evs.length + 1, kind: 'completed', data: {}, at: iso(at) });
      writes.push({
        state: state(id, evs.length, done ? 'completed' : 'running', at),
        prevSeq: 0,
        events: evs,
        keys: [],
      });
    }
    await store.commit(writes);
    events += writes.reduce((n, w) => n + w.events.length, 0);
    batch++;
  }
  return events / ((performance.now() - started) / 1000);
}

async function withWebhooks(store, kinds) {
  for (const w of await store.webhooks.listWebhooks()) await store.webhooks.deleteWebhook(w.id);
  for (const events of kinds) {
    await store.webhooks.createWebhook({
      id: `wh_${randomBytes(12).toString('hex')}`,
      url: 'https://example.com/hook',
      events,
      owner: null,
      kind: null,
      secret: 'whsec_bench',
      previousSecret: null,
      previousUntil: null,
      createdAt: Date.now(),
    });
  }
}

/** Each load on a fresh, empty store, so that no set-up inherits another's rows. */
async function measure(name, open) {
  const rates = Object.fromEntries(Object.keys(SETUPS).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotated each round, so that no set-up always runs first.
    const order = Object.entries(SETUPS);
    for (let i = 0; i < round; i++) order.push(order.shift());
    for (const [setup, kinds] of order) {
      const { store, close } = await open();
      let rate;
      try {
        await store.migrate();
        await withWebhooks(store, kinds);
        rate = await load(store, DURATION_MS / ROUNDS);
      } finally {
        await close();
      }
      rates[setup].push(rate);
      process.stderr.write(`${name} ${setup} round ${round + 1}: ${fmt.int(rate)} events/s\n`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(rates.none);
  return Object.keys(SETUPS).map((setup) => ({
    metric: `${name}: commit with webhooks "${setup}", events/s (ratio to none)`,
    goal: setup === 'unmatched' ? '≥ 0.9 × none' : '—',
    result: `${fmt.int(median(rates[setup]))} (${(median(rates[setup]) / base).toFixed(2)})`,
    pass: setup === 'unmatched' ? median(rates[setup]) / base >= 0.9 : null,
  }));
}

const rows = [];
rows.push(
  ...(await measure('SQLite', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'headway-bench-outbox-'));
    const store = new SqliteStore({ path: join(dir, 'headway.db') });
    return {
      store,
      close: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  })),
);

const admin = new pg.Client({ connectionString: POSTGRES_URL });
let postgres = false;
try {
  await admin.connect();
  postgres = true;
} catch (err) {
  process.stderr.write(`PostgreSQL skipped: ${err.message}\n`);
}
if (postgres) {
  try {
    rows.push(
      ...(await measure('PostgreSQL', async () => {
        const schema = `hw_bench_outbox_${randomBytes(4).toString('hex')}`;
        const store = new PostgresStore({ connectionString: POSTGRES_URL, schema });
        return {
          store,
          close: async () => {
            await store.close();
            await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
          },
        };
      })),
    );
  } finally {
    await admin.end();
  }
}
console.log(renderTable(rows));
