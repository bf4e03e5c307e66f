import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../src/delivery.js';
import { Hub } from '../src/hub.js';
import { SqliteStore } from '../src/store/sqlite.js';

const T0 = Date.parse('2026-02-01T09:00:00.000Z');

let dir: string;
let store: SqliteStore;
let hub: Hub;
let clock: number;
let n = 0;
const uid = (p = 'job') => `${p}-${process.pid}-${++n}`;
const at = (ms: number) => {
  clock = T0 + ms;
};

function makeHub(): Hub {
  // No timer: the tests sweep for stalls themselves, on the injected clock.
  return new Hub({ store, now: () => clock, stall: { checkMs: 0 } });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-eta-'));
  store = new SqliteStore({ path: join(dir, 'headway.db') });
  await store.migrate();
  clock = T0;
  hub = makeHub();
});

afterEach(async () => {
  await hub.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const PLAN = [
  { name: 'download', weight: 1 },
  { name: 'transcode', weight: 1 },
];

/** Runs one job of `kind` from `start` ms: download 10 s, transcode 30 s, reports every second. */
async function runJob(kind: string, start: number): Promise<string> {
  const id = uid();
  at(start);
  await hub.createJob({ id, owner: 'u1', kind, stages: PLAN });
  await hub.publish(id, [{ kind: 'stage', name: 'download' }]);
  for (let s = 1; s <= 10; s++) {
    at(start + s * 1000);
    await hub.publish(id, [{ kind: 'progress', percent: s * 10 }]);
  }
  await hub.publish(id, [{ kind: 'stage', name: 'transcode' }]);
  for (let s = 1; s <= 30; s++) {
    at(start + 10_000 + s * 1000);
    await hub.publish(id, [{ kind: 'progress', percent: (s * 100) / 30 }]);
  }
  await hub.publish(id, [{ kind: 'completed' }]);
  return id;
}

describe('job kinds and learned durations', () => {
  it('stores the kind and answers it with the state', async () => {
    const state = await hub.createJob({ id: uid(), owner: 'u1', kind: 'transcode' });
    expect(state.kind).toBe('transcode');
    expect((await hub.getJob(state.id))?.kind).toBe('transcode');
    expect(state.stalled).toBeNull();
  });

  it('gives a job of a known kind an estimate from its creation, from history', async () => {
    const fresh = await hub.createJob({ id: uid(), owner: 'u1', kind: 'transcode', stages: PLAN });
    expect(fresh.eta).toBeNull();
    await runJob('transcode', 0);
    await runJob('transcode', 100_000);
    const summary = await hub.kindSummary('transcode');
    expect(summary?.jobs).toBe(2);
    expect(Object.keys(summary?.stages ?? {})).toEqual(['download', 'transcode']);

    at(200_000);
    const next = await hub.createJob({ id: uid(), owner: 'u1', kind: 'transcode', stages: PLAN });
    // Two identical jobs of 40 s of running time: the third is expected to take as long.
    expect(next.eta).toMatchObject({ seconds: 40, basis: 'history' });
    expect(next.eta!.low).toBeLessThanOrEqual(40);
    expect(next.eta!.high).toBeGreaterThanOrEqual(40);

    // Half way through the short first stage, the slow second stage is still counted.
    await hub.publish(next.id, [{ kind: 'stage', name: 'download' }]);
    at(205_000);
    const { seq } = await hub.publish(next.id, [{ kind: 'progress', percent: 50 }]);
    const state = await hub.getJob(next.id);
    expect(state?.seq).toBe(seq);
    expect(state?.progress.percent).toBe(25);
    expect(state?.eta).toMatchObject({ seconds: 35, basis: 'both' });
  });

  it('keeps what it learned across a restart', async () => {
    await runJob('import', 0);
    await runJob('import', 100_000);
    await hub.close();
    hub = makeHub();
    at(300_000);
    const state = await hub.createJob({ id: uid(), owner: 'u1', kind: 'import', stages: PLAN });
    expect(state.eta).toMatchObject({ seconds: 40, basis: 'history' });
  });

  it('does not learn from jobs that failed or were cancelled', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1', kind: 'flaky' });
    at(1000);
    await hub.publish(id, [{ kind: 'progress', percent: 10 }]);
    at(2000);
    await hub.publish(id, [{ kind: 'failed', error: { message: 'no' } }]);
    expect(await hub.kindSummary('flaky')).toBeNull();
  });

  it('never sends the estimator to subscribers', async () => {
    const id = uid();
    const got: Delivery[] = [];
    hub.subscribe({ job: id }, { deliver: (d) => got.push(d) });
    await hub.createJob({ id, owner: 'u1' });
    at(1000);
    await hub.publish(id, [{ kind: 'progress', percent: 10 }]);
    at(2000);
    await hub.publish(id, [{ kind: 'progress', percent: 20 }]);
    await hub.flush();
    await expect.poll(() => got.length).toBe(3);
    for (const d of got) expect(JSON.parse(d.native.toString()).state).not.toHaveProperty('estimator');
    expect(got[2]!.state.eta).toMatchObject({ basis: 'rate' });
  });
});

describe('stalls', () => {
  it('marks a running job stalled after ten of its usual gaps (3 s at least), and clears it on the next report', async () => {
    const id = uid();
    const got: Delivery[] = [];
    hub.subscribe({ job: id }, { deliver: (d) => got.push(d) });
    await hub.createJob({ id, owner: 'u1' });
    // Reports every 200 ms: threshold max(3 s, 10 × 200 ms) = 3 s.
    for (let i = 1; i <= 10; i++) {
      at(i * 200);
      await hub.publish(id, [{ kind: 'progress', percent: i }]);
    }
    at(2000 + 2999);
    expect(await hub.checkStalls()).toBe(0);
    at(2000 + 3000);
    expect(await hub.checkStalls()).toBe(1);
    const stalled = await hub.getJob(id);
    expect(stalled?.stalled).toEqual({ since: new Date(T0 + 2000).toISOString() });
    // Confidence falls while stalled.
    expect(stalled?.eta?.confidence).toBeLessThan(got[got.length - 2]!.state.eta!.confidence);
    // Not marked twice.
    at(60_000);
    expect(await hub.checkStalls()).toBe(0);

    at(61_000);
    await hub.publish(id, [{ kind: 'progress', percent: 11 }]);
    const state = await hub.getJob(id);
    expect(state?.stalled).toBeNull();
    await expect.poll(() => got.length).toBe(14);
    expect(got.slice(-3).map((d) => d.kind)).toEqual(['stalled', 'unstalled', 'progress']);
    expect(got[got.length - 3]!.event.data).toEqual({
      since: new Date(T0 + 2000).toISOString(),
      thresholdMs: 3000,
    });
  });

  it('uses the default threshold before a job has a usual gap, and never stalls a paused job', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    at(1000);
    await hub.publish(id, [{ kind: 'progress', percent: 1 }]);
    at(1000 + 59_999);
    expect(await hub.checkStalls()).toBe(0);
    await hub.publish(id, [{ kind: 'paused' }]);
    at(10 * 60_000);
    expect(await hub.checkStalls()).toBe(0);
    expect((await hub.getJob(id))?.stalled).toBeNull();
  });

  it("uses the kind's usual gap for a job that has not reported enough yet", async () => {
    await runJob('steady', 0);
    await runJob('steady', 100_000);
    const id = uid();
    at(200_000);
    await hub.createJob({ id, owner: 'u1', kind: 'steady', stages: PLAN });
    await hub.publish(id, [{ kind: 'stage', name: 'download' }]);
    // The kind reports every second: stalled after 10 s rather than the default minute.
    at(210_000);
    expect(await hub.checkStalls()).toBe(1);
  });
});
