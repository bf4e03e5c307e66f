/**
 * The embedded store's write-ordered event log (`store/sqlite-log.ts`): reads
 * see every commit whether its events have moved to their job's place or not;
 * the log stays bounded; a process killed with events in the log loses none of
 * them, and brings back none of a job it deleted; another connection on the
 * same file sees and conflicts with what is in this one's log.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobState } from '@headway/protocol';
import type { JobWrite } from '@headway/server';
import {
  type HubProcess,
  REPO_ROOT,
  requireFreshBuild,
  spawnHubProcess,
  TEST_API_KEY,
  waitFor,
  jobWrite as write,
} from '@headway/test-helpers';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { estimatorOf } from '../src/state/estimator.js';
import { reduce } from '../src/state/reducer.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { StoreConflictError } from '../src/store/store.js';

const dirs: string[] = [];
const stores: SqliteStore[] = [];
const hubs: HubProcess[] = [];

afterEach(async () => {
  for (const { child } of hubs.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await new Promise((resolve) =>
      child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(null),
    );
  }
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function dbFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headway-log-'));
  dirs.push(dir);
  return path.join(dir, 'headway.db');
}

async function open(file: string, logLimit?: number): Promise<SqliteStore> {
  const store = new SqliteStore({ path: file, logLimit });
  stores.push(store);
  await store.migrate();
  return store;
}

/** Rows of the log and of `events`, read on a connection of their own. */
function rowCounts(file: string): { log: number; events: number } {
  const db = new Database(file, { readonly: true });
  try {
    const count = (table: string) => db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number;
    return { log: count('event_log'), events: count('events') };
  } finally {
    db.close();
  }
}

/** Commits `count` one-event writes round robin over `jobs` (created first). */
async function progress(store: SqliteStore, jobs: string[], count: number, seqs: Map<string, number>) {
  const created = jobs.filter((id) => !seqs.has(id));
  if (created.length > 0) await store.commit(created.map((id) => write(id, 0, 1)));
  for (const id of created) seqs.set(id, 1);
  for (let i = 0; i < count; i++) {
    const id = jobs[i % jobs.length]!;
    const seq = seqs.get(id)!;
    await store.commit([write(id, seq, seq + 1)]);
    seqs.set(id, seq + 1);
  }
}

/**
 * Runs the compiled store in a process that commits `writes`, deletes `deleted`,
 * commits `after`, and is then killed with SIGKILL, leaving whatever it held in
 * memory behind.
 */
async function commitThenKill(
  file: string,
  writes: JobWrite[][],
  deleted: string[] = [],
  after: JobWrite[][] = [],
): Promise<void> {
  requireFreshBuild();
  const script = `
    import { SqliteStore } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/server/dist/store/sqlite.js'))};
    const { file, writes, deleted, after } = JSON.parse(process.argv[1]);
    const store = new SqliteStore({ path: file });
    await store.migrate();
    for (const batch of writes) await store.commit(batch);
    await store.deleteJobs(deleted);
    for (const batch of after) await store.commit(batch);
    process.stdout.write('committed ' + store.pendingEvents + '\\n');
    process.kill(process.pid, 'SIGKILL');
  `;
  await runUntilKilled(script, JSON.stringify({ file, writes, deleted, after }));
}

/**
 * Runs `script` (an ES module) in a child process with `arg` as its argument;
 * it must print `committed <events still in the log>` and kill itself with SIGKILL.
 */
async function runUntilKilled(script: string, arg: string): Promise<void> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, arg]);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_, s) => resolve(s)),
  );
  expect(signal, out).toBe('SIGKILL');
  // It died with events still in the log, the case these tests are about.
  expect(Number(/committed (\d+)/.exec(out)?.[1]), out).toBeGreaterThan(0);
}

describe('the event log', () => {
  it('serves each job whole while part of its events has moved and part waits', async () => {
    const file = dbFile();
    const store = await open(file, 8);
    const seqs = new Map<string, number>();
    const jobs = ['a', 'b', 'c'];
    for (let round = 0; round < 10; round++) {
      await progress(store, jobs, 7, seqs);
      for (const id of jobs) {
        const seq = seqs.get(id)!;
        expect((await store.getJob(id))?.seq).toBe(seq);
        const all = await store.getEvents(id, 0, 1000);
        expect(all.map((e) => e.seq)).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
        // Pages that start among the moved events and end among the waiting ones.
        for (let since = 0; since < seq; since++) {
          const page = await store.getEvents(id, since, 2);
          expect(page.map((e) => e.seq)).toEqual([since + 1, since + 2].filter((n) => n <= seq));
        }
      }
      expect((await store.getJobs(['c', 'a'])).map((j) => [j.id, j.seq])).toEqual([
        ['c', seqs.get('c')],
        ['a', seqs.get('a')],
      ]);
      // Never more waiting than the limit and one commit.
      expect(store.pendingEvents).toBeLessThanOrEqual(8 + 1);
    }
    const { log, events } = rowCounts(file);
    expect(events).toBeGreaterThan(0);
    expect(log).toBeGreaterThan(0);
    // The log keeps only rows from the oldest waiting job's on: moved ones are deleted.
    expect(log).toBeLessThan(3 * 8);
  });

  it('lists jobs by their newest rows, and moves everything on close', async () => {
    const file = dbFile();
    const store = await open(file);
    await store.commit([write('old', 0, 1), write('new', 0, 1)]);
    const later = write('old', 1, 2);
    later.state = { ...later.state, status: 'completed', updatedAt: '2030-01-01T00:00:00.000Z' };
    later.state.finishedAt = later.state.updatedAt;
    await store.commit([later]);
    expect(store.pendingEvents).toBe(3);
    const page = await store.listJobs({ status: ['completed'], limit: 100 });
    expect(page.jobs.map((j) => [j.id, j.seq, j.status])).toEqual([['old', 2, 'completed']]);
    expect((await store.listJobs({ limit: 100 })).jobs.map((j) => j.id)).toEqual(['old', 'new']);
    await store.close();
    expect(rowCounts(file)).toEqual({ log: 0, events: 3 });
  });

  it('loses no committed event of a process killed before it moved them', async () => {
    const file = dbFile();
    const batches = [
      [write('k1', 0, 1), write('k2', 0, 1)],
      [write('k1', 1, 4)],
      [write('k2', 1, 2), write('k1', 4, 5)],
    ];
    await commitThenKill(file, batches);
    expect(rowCounts(file).log).toBeGreaterThan(0);
    const store = await open(file);
    expect(rowCounts(file).log).toBe(0);
    expect((await store.getJob('k1'))?.seq).toBe(5);
    expect((await store.getEvents('k1', 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.getEvents('k2', 0, 100)).map((e) => e.seq)).toEqual([1, 2]);
    expect((await store.listJobs({ limit: 100 })).jobs.map((j) => [j.id, j.seq]).sort()).toEqual([
      ['k1', 5],
      ['k2', 2],
    ]);
    // And it goes on from there.
    await store.commit([write('k1', 5, 6)]);
    await expect(store.commit([write('k2', 1, 2)])).rejects.toBeInstanceOf(StoreConflictError);
  });

  it("gives a killed process's jobs back the ETA estimator their events make, which the log leaves out", async () => {
    requireFreshBuild();
    const file = dbFile();
    // Jobs folded by the reducer, as a hub folds them: a plan of stages, progress in
    // each, writes of one and of several events, some moved (log limit 6) and some waiting.
    const script = `
      import { createdData, prepareEvent, reduce } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/server/dist/state/index.js'))};
      import { SqliteStore } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/server/dist/store/sqlite.js'))};
      const store = new SqliteStore({ path: process.argv[1], logLimit: 6 });
      await store.migrate();
      const heads = new Map();
      let clock = Date.UTC(2026, 11, 6);
      const fold = (id, state, input) => {
        const { kind, data } = prepareEvent(state, input);
        clock += 700 + (state.seq % 5) * 130;
        const event = { job: id, seq: state.seq + 1, kind, data, at: new Date(clock).toISOString() };
        return [event, reduce(state, event, null)];
      };
      for (const id of ['e1', 'e2', 'e3']) {
        const data = createdData({ id, owner: 'o', name: id, stages: [{ name: 'fetch' }, { name: 'encode' }, { name: 'upload' }] });
        const event = { job: id, seq: 1, kind: 'created', data, at: new Date(clock).toISOString() };
        const state = reduce(null, event, null);
        await store.commit([{ state, prevSeq: 0, events: [event], keys: [] }]);
        heads.set(id, state);
      }
      const inputs = [];
      for (const stage of ['fetch', 'encode', 'upload']) {
        inputs.push({ kind: 'stage', name: stage });
        for (let p = 10; p <= 90; p += 20) inputs.push({ kind: 'progress', percent: p });
      }
      for (const input of inputs) {
        const writes = [];
        for (const [id, prev] of heads) {
          // e2 logs a line with each progress report: writes of two events.
          const batch = id === 'e2' && input.kind === 'progress' ? [input, { kind: 'log', message: 'tick' }] : [input];
          let state = prev;
          const events = [];
          for (const each of batch) {
            let event;
            [event, state] = fold(id, state, each);
            events.push(event);
          }
          heads.set(id, state);
          writes.push({ state, prevSeq: prev.seq, events, keys: [] });
        }
        await store.commit(writes);
      }
      process.stdout.write('committed ' + store.pendingEvents + '\\n');
      process.kill(process.pid, 'SIGKILL');
    `;
    await runUntilKilled(script, file);

    const store = await open(file);
    for (const id of ['e1', 'e2', 'e3']) {
      const events = await store.getEvents(id, 0, 1000);
      let folded: JobState | null = null;
      for (const event of events) folded = reduce(folded, event, null);
      const stored = (await store.getJob(id))!;
      expect(stored.seq).toBe(folded!.seq);
      const estimator = estimatorOf(stored);
      expect(estimator?.done.map((d) => d.name)).toEqual(['fetch', 'encode']);
      expect(estimator).toEqual(estimatorOf(folded!));
    }
  });

  it('writes a large write in place, after the events of its job that wait, and a crash loses none', async () => {
    const file = dbFile();
    // Two small writes wait in the log, a write of 30 events goes in place behind them, two more small ones wait.
    const batches = [
      [write('big', 0, 1)],
      [write('big', 1, 3)],
      [write('big', 3, 33)],
      [write('big', 33, 34), write('big', 34, 36)],
    ];
    const store = await open(dbFile());
    for (const batch of batches) await store.commit(batch);
    expect(store.pendingEvents).toBe(3);
    expect((await store.getEvents('big', 0, 100)).map((e) => e.seq)).toEqual(
      Array.from({ length: 36 }, (_, i) => i + 1),
    );
    expect((await store.getEvents('big', 30, 4)).map((e) => e.seq)).toEqual([31, 32, 33, 34]);

    await commitThenKill(file, batches);
    const reopened = await open(file);
    expect((await reopened.getJob('big'))?.seq).toBe(36);
    expect((await reopened.getEvents('big', 0, 100)).map((e) => e.seq)).toEqual(
      Array.from({ length: 36 }, (_, i) => i + 1),
    );
  });

  it('brings back nothing of a job deleted before the process was killed', async () => {
    const file = dbFile();
    await commitThenKill(
      file,
      [
        [write('gone', 0, 1), write('kept', 0, 1)],
        [write('gone', 1, 3), write('kept', 1, 2)],
      ],
      ['gone'],
      [[write('kept', 2, 3)]],
    );
    const store = await open(file);
    expect(await store.getJob('gone')).toBeNull();
    expect(await store.getEvents('gone', 0, 100)).toEqual([]);
    expect(await store.isDeleted('gone')).toBe(true);
    expect((await store.getEvents('kept', 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('sweeps a finished job whose last events still wait in the log, leaving none of them there', async () => {
    const file = dbFile();
    const store = await open(file);
    const done = write('done', 1, 3);
    done.state = { ...done.state, status: 'completed', finishedAt: done.state.updatedAt };
    await store.commit([write('done', 0, 1), write('live', 0, 1)]);
    await store.commit([done, write('live', 1, 2)]);
    expect(store.pendingEvents).toBe(5);
    const swept = await store.sweep({ eventsBefore: 0, jobsBefore: Date.now(), batchSize: 1 });
    expect(swept).toEqual({ events: 3, jobs: 1 });
    expect(await store.getJob('done')).toBeNull();
    await store.commit([write('live', 2, 3)]);
    expect((await store.getEvents('live', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3]);
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare("SELECT COUNT(*) FROM event_log WHERE job = 'done'").pluck().get();
      expect(rows).toBe(0);
    } finally {
      db.close();
    }
  });

  it('shows another connection what waits in this one’s log, and conflicts with what it wrote since', async () => {
    const file = dbFile();
    const a = await open(file);
    const b = await open(file);
    await a.commit([write('shared', 0, 1)]);
    await a.commit([write('shared', 1, 3)]);
    expect(a.pendingEvents).toBe(3);
    expect((await b.getJob('shared'))?.seq).toBe(3);
    expect((await b.getEvents('shared', 1, 10)).map((e) => e.seq)).toEqual([2, 3]);
    await b.commit([write('shared', 3, 4)]);
    await expect(a.commit([write('shared', 3, 4)])).rejects.toBeInstanceOf(StoreConflictError);
    expect((await a.getJob('shared'))?.seq).toBe(4);
    await a.commit([write('shared', 4, 5)]);
    expect((await b.getEvents('shared', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await b.listJobs({ limit: 100 })).jobs.map((j) => j.seq)).toEqual([5]);
  });

  it('checkpoints the WAL from a worker thread, which closes with the store', async () => {
    const file = dbFile();
    const store = new SqliteStore({ path: file, checkpointEveryMs: 5 });
    await store.migrate();
    const seqs = new Map<string, number>();
    await progress(store, ['w1', 'w2'], 20, seqs);
    await waitFor(() => store.backgroundCheckpoints > 0, 'a checkpoint by the worker');
    await store.close();
    // The last connection to close removes the WAL: the worker's closed before the store's.
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    const reopened = await open(file);
    expect((await reopened.getEvents('w1', 0, 100)).map((e) => e.seq)).toEqual(
      Array.from({ length: seqs.get('w1')! }, (_, i) => i + 1),
    );
  });

  it('keeps every event a hub acknowledged before it was killed', async () => {
    requireFreshBuild();
    const dataDir = path.dirname(dbFile());
    const start = async () => {
      const hub = await spawnHubProcess(['--data-dir', dataDir]);
      hubs.push(hub);
      return async (method: string, url: string, body?: unknown) => {
        const res = await fetch(`${hub.url}${url}`, {
          method,
          headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(res.status, `${method} ${url}`).toBeLessThan(300);
        // biome-ignore lint/suspicious/noExplicitAny: checked by the assertions.
        return (await res.json()) as any;
      };
    };
    let api = await start();
    const jobs = ['one', 'two', 'three'];
    for (const id of jobs) await api('POST', '/v1/jobs', { id, owner: 'alice' });
    for (let percent = 10; percent <= 60; percent += 10) {
      for (const id of jobs)
        await api('POST', `/v1/jobs/${id}/events`, { events: [{ kind: 'progress', percent }] });
    }
    await api('POST', '/v1/jobs/two/events', { events: [{ kind: 'completed', result: { ok: true } }] });
    const { child } = hubs[0]!;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    api = await start();
    for (const id of jobs) {
      const job = await api('GET', `/v1/jobs/${id}`);
      expect(job.progress.percent).toBe(id === 'two' ? 100 : 60);
      const { events } = await api('GET', `/v1/jobs/${id}/events?since=0`);
      expect(events.map((e: { seq: number }) => e.seq)).toEqual(
        Array.from({ length: job.seq }, (_, i) => i + 1),
      );
    }
    expect((await api('GET', '/v1/jobs/two')).status).toBe('completed');
    const { jobs: completed } = await api('GET', '/v1/jobs?status=completed');
    expect(completed.map((j: { id: string }) => j.id)).toEqual(['two']);
    // The restarted hub goes on from the seq the killed one acknowledged.
    const { seq } = await api('POST', '/v1/jobs/one/events', { events: [{ kind: 'progress', percent: 70 }] });
    expect(seq).toBe(8);
  }, 60_000);
});
