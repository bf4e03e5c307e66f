#!/usr/bin/env node
/**
 * What a commit of progress events costs the embedded store, alone
 * (`node bench/store-commit.js`; see docs/benchmarks.md).
 *
 * The fan-out load's commits, outside the hub: 200 jobs folded by the hub's own
 * reducer, then batches of 100 progress events of 100 different jobs (round
 * robin), each batch one `SqliteStore.commit` as the group commit makes it. It
 * reports CPU per event (user and system) and how long a commit blocks (p99 and
 * longest), for the commit as it is and for writing in place as the store did
 * before its event log, on the same file:
 * - `commit`: `SqliteStore.commit`: events appended to the write-ordered log,
 *   moved into their jobs' places once 4,096 wait (store/sqlite-log.ts);
 * - `log limit 0`: each commit first moves the events the one before it left;
 * - `in place`: the job row's `UPDATE` and the event's `INSERT` in one
 *   transaction, and each of the two alone.
 *
 * Options: --batches=<n> per variant (default 2,000, after 300 to warm up).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createdData, prepareEvent, reduce } from '../packages/server/dist/state/index.js';
import { jobColumns } from '../packages/server/dist/store/rows.js';
import { SqliteStore } from '../packages/server/dist/store/sqlite.js';
import { SQL } from '../packages/server/dist/store/sqlite-sql.js';

const { values: args } = parseArgs({ options: { batches: { type: 'string', default: '2000' } } });
const BATCHES = Number(args.batches);
const WARM_UP = 300;
const JOBS = 200;
const PER_BATCH = 100;

/** The store's commit before the event log: each event and its job's row written in place. */
function inPlace(ctx, writes, { events = true, jobs = true } = {}) {
  ctx.db.transaction(() => {
    for (const w of writes) {
      if (jobs) ctx.updateJob.run({ ...jobColumns(w.state), prevSeq: w.prevSeq });
      if (!events) continue;
      const e = w.events[0];
      ctx.insertEvent.run(e.job, e.seq, e.kind, Date.parse(e.at), JSON.stringify(e.data));
    }
  })();
}

const VARIANTS = [
  { name: 'commit (event log, moves at 4,096 waiting)', run: (ctx, writes) => ctx.store.commit(writes) },
  {
    name: 'commit, moving each commit at the next (log limit 0)',
    options: { logLimit: 0 },
    run: (ctx, writes) => ctx.store.commit(writes),
  },
  { name: 'in place: job UPDATE and event INSERT', run: (ctx, writes) => inPlace(ctx, writes) },
  { name: 'in place: event INSERT only', run: (ctx, writes) => inPlace(ctx, writes, { jobs: false }) },
  { name: 'in place: job UPDATE only', run: (ctx, writes) => inPlace(ctx, writes, { events: false }) },
];

async function measure(variant) {
  const dir = mkdtempSync(join(tmpdir(), 'headway-store-bench-'));
  const store = new SqliteStore({ path: join(dir, 'headway.db'), ...variant.options });
  try {
    await store.migrate();
    // The store's connection, for the single statements and the settings of a variant.
    const db = store.db;
    const ctx = {
      store,
      db,
      insertEvent: db.prepare(SQL.insertEvent),
      updateJob: db.prepare(SQL.updateJob),
    };
    let at = Date.parse('2026-01-01T00:00:00.000Z');
    const states = [];
    const created = [];
    for (let i = 0; i < JOBS; i++) {
      const id = `bench-job-${i}`;
      const data = createdData({ id, owner: 'bench', name: `Bench job ${i}` });
      const state = reduce(null, { job: id, seq: 1, kind: 'created', data, at: new Date(at).toISOString() });
      states.push(state);
      created.push({ state, prevSeq: 0, events: [], keys: [] });
    }
    await store.commit(created);
    let user = 0;
    let system = 0;
    let events = 0;
    const durations = [];
    for (let b = 0; b < WARM_UP + BATCHES; b++) {
      at += 20;
      const writes = [];
      for (let k = 0; k < PER_BATCH; k++) {
        const j = (b * PER_BATCH + k) % JOBS;
        const before = states[j];
        const percent = (before.seq % 99) + 1;
        const { kind, data } = prepareEvent(before, { kind: 'progress', percent });
        const event = { job: before.id, seq: before.seq + 1, kind, data, at: new Date(at).toISOString() };
        const state = reduce(before, event);
        states[j] = state;
        writes.push({ state, prevSeq: before.seq, events: [event], keys: [] });
      }
      // Folding is not the store's cost: only the commit is counted.
      const start = process.cpuUsage();
      const began = performance.now();
      await variant.run(ctx, writes);
      const took = performance.now() - began;
      // A turn of the event loop between commits, as in the hub: the store's
      // checkpoints run on a worker thread that a timer wakes, and the CPU it
      // uses meanwhile is the commits' too.
      await new Promise((resolve) => setImmediate(resolve));
      const used = process.cpuUsage(start);
      if (b < WARM_UP) continue;
      durations.push(took);
      user += used.user;
      system += used.system;
      events += writes.length;
    }
    durations.sort((x, y) => x - y);
    const p99 = durations[Math.floor(durations.length * 0.99)];
    return { user: user / events, system: system / events, p99, max: durations.at(-1) };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const variant of VARIANTS) {
  const { user, system, p99, max } = await measure(variant);
  rows.push(
    `| ${variant.name} | ${(user + system).toFixed(1)} | ${user.toFixed(1)} | ${system.toFixed(1)} | ${p99.toFixed(2)} / ${max.toFixed(2)} |`,
  );
}
process.stdout.write(
  `\nStore commits: ${BATCHES} batches of ${PER_BATCH} progress events of ${PER_BATCH} jobs (of ${JOBS}), SQLite (WAL, synchronous = NORMAL)\n\n` +
    '| Variant | CPU µs per event | user | system | ms per commit, p99 / max |\n| --- | ---: | ---: | ---: | ---: |\n' +
    `${rows.join('\n')}\n`,
);
