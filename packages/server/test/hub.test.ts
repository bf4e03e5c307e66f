import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobEvent, JobState } from '@headway/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../src/delivery.js';
import { HeadwayError } from '../src/errors.js';
import { Hub } from '../src/hub.js';
import { Metrics } from '../src/metrics.js';
import { ObservedStore } from './observed-store.js';

let dir: string;
let store: ObservedStore;
let hub: Hub;
let n = 0;
const uid = (p = 'job') => `${p}-${process.pid}-${++n}`;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-hub-'));
  store = new ObservedStore({ path: join(dir, 'headway.db') });
  await store.migrate();
  hub = new Hub({ store, metrics: new Metrics(), replayLimit: 50 });
});

afterEach(async () => {
  await hub.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function collector() {
  const got: Delivery[] = [];
  return { got, deliver: (d: Delivery) => got.push(d) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HeadwayError) return err.code;
    throw err;
  }
  throw new Error('expected a HeadwayError');
}

describe('sequencing (guarantee 1)', () => {
  it('assigns gapless increasing seqs under concurrent publishes, and the state carries the last one', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => hub.publish(id, [{ kind: 'progress', percent: i / 2 }])),
    );
    const seqs = results.map((r) => r.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i + 2));
    const events = await store.getEvents(id, 0, 1000);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
    expect((await hub.getJob(id))?.seq).toBe(61);
  });

  it('writes all events of one tick in one commit (group commit)', async () => {
    const ids = [uid(), uid(), uid()];
    await Promise.all(ids.map((id) => hub.createJob({ id, owner: 'u1' })));
    const before = store.commits.length;
    await Promise.all(
      ids.flatMap((id) => [1, 2, 3].map((p) => hub.publish(id, [{ kind: 'progress', percent: p }]))),
    );
    expect(store.commits.length - before).toBe(1);
    expect(store.commits.at(-1)!.flatMap((w) => w.events)).toHaveLength(9);
  });

  it('answers a publish only after its commit, and a failed commit with a retryable 503', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    store.failNext = true;
    expect(await codeOf(hub.publish(id, [{ kind: 'progress', percent: 10 }]))).toBe(
      'HW_ERR_STORE_UNAVAILABLE',
    );
    // Nothing half-applied: the next publish continues from the stored seq.
    const r = await hub.publish(id, [{ kind: 'progress', percent: 20 }]);
    expect(r.seq).toBe(2);
    expect((await store.getEvents(id, 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('applies a request all-or-nothing', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    const code = await codeOf(
      hub.publish(id, [
        { kind: 'progress', percent: 10 },
        { kind: 'progress', percent: 150 },
      ]),
    );
    expect(code).toBe('HW_ERR_INVALID_VALUE');
    expect((await hub.getJob(id))?.seq).toBe(1);
  });
});

describe('idempotency (guarantee 8)', () => {
  it('applies a retried event with the same key once, also across a restart', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    const first = await hub.publish(id, [
      { kind: 'progress', percent: 10, key: 'a' },
      { kind: 'log', message: 'hello', key: 'b' },
    ]);
    const again = await hub.publish(id, [
      { kind: 'progress', percent: 10, key: 'a' },
      { kind: 'log', message: 'hello', key: 'b' },
    ]);
    expect(again.seq).toBe(first.seq);
    // A fresh hub has no keys in memory: the store answers.
    const fresh = new Hub({ store });
    const third = await fresh.publish(id, [
      { kind: 'log', message: 'hello', key: 'b' },
      { kind: 'log', message: 'new', key: 'c' },
    ]);
    expect(third.seq).toBe(first.seq + 1);
    expect((await store.getEvents(id, 0, 10)).map((e) => e.kind)).toEqual([
      'created',
      'progress',
      'log',
      'log',
    ]);
    await fresh.close();
  });

  it('dedupes the same key twice within one request', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    const r = await hub.publish(id, [
      { kind: 'log', message: 'x', key: 'k' },
      { kind: 'log', message: 'x', key: 'k' },
    ]);
    expect(r.seq).toBe(2);
  });
});

describe('delivery (guarantee 2)', () => {
  it('dispatches committed events in seq order, once per subscriber across overlapping topics', async () => {
    const id = uid();
    const sub = collector();
    hub.subscribe({ job: id }, sub);
    hub.subscribe({ user: 'u1' }, sub);
    hub.subscribe({ all: true }, sub);
    await hub.createJob({ id, owner: 'u1' });
    for (let p = 10; p <= 50; p += 10) await hub.publish(id, [{ kind: 'progress', percent: p }]);
    await hub.publish(id, [{ kind: 'completed', result: { url: 'x' } }]);
    expect(sub.got.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(sub.got.at(-1)!.state.status).toBe('completed');
    // Encoded once and shared.
    const d = sub.got[2]!;
    expect(d.native).toBe(d.native);
    expect(JSON.parse(d.native.toString())).toMatchObject({
      type: 'event',
      job: id,
      seq: 3,
      kind: 'progress',
    });
  });

  it('hands subscribers only committed events', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    const sub = collector();
    hub.subscribe({ job: id }, sub);
    store.failNext = true;
    await hub.publish(id, [{ kind: 'progress', percent: 5 }]).catch(() => {});
    expect(sub.got).toHaveLength(0);
  });
});

describe('resume (guarantee 3)', () => {
  it('replays exactly the missed events, or gives the state beyond the replay limit', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    for (let i = 1; i <= 60; i++) await hub.publish(id, [{ kind: 'progress', percent: i }]);
    const near = await hub.resume(id, 40);
    expect(near?.recovered).toBe(true);
    expect(near?.events.map((e: JobEvent) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => 41 + i));
    const far = await hub.resume(id, 2);
    expect(far).toMatchObject({ recovered: false, events: [] });
    expect(far?.state.seq).toBe(61);
    expect(await hub.resume(id, 61)).toMatchObject({ recovered: true, events: [] });
    expect(await hub.resume(uid('missing'), 0)).toBeNull();
  });
});

describe('control', () => {
  it('records cancel and pause requests and hands them back to the worker', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u1' });
    await hub.publish(id, [{ kind: 'progress', percent: 5 }]);
    await hub.control(id, 'pause', 'lunch', 'u1');
    expect((await hub.publish(id, [{ kind: 'paused' }])).control).toEqual({
      cancelRequested: false,
      paused: true,
    });
    await hub.control(id, 'resume', undefined, 'u1');
    await hub.control(id, 'cancel', 'enough', 'u1');
    const r = await hub.publish(id, [{ kind: 'resumed' }]);
    expect(r.control.cancelRequested).toBe(true);
    await hub.publish(id, [{ kind: 'cancelled' }]);
    expect((await hub.getJob(id))?.status).toBe('cancelled');
    expect(await codeOf(hub.publish(id, [{ kind: 'progress', percent: 9 }]))).toBe('HW_ERR_JOB_FINISHED');
  });

  it('cancelling a parent cancels its unfinished children', async () => {
    const parent = uid('batch');
    await hub.createJob({ id: parent, owner: 'u1' });
    const kids = [uid(), uid(), uid()];
    for (const k of kids) await hub.createJob({ id: k, owner: 'u1', parent });
    await hub.publish(kids[0]!, [{ kind: 'completed' }]);
    await hub.publish(kids[1]!, [{ kind: 'progress', percent: 50 }]);
    await hub.control(parent, 'cancel', undefined, 'u1');
    const states = await Promise.all(kids.map((k) => hub.getJob(k)));
    expect(states[0]?.status).toBe('completed');
    expect(states[1]?.control.cancelRequested).toBe(true);
    // A queued child has no worker to acknowledge: it is cancelled at once.
    expect(states[2]?.status).toBe('cancelled');
    // Once the last worker acknowledges, the batch ends cancelled, not completed.
    await hub.publish(kids[1]!, [{ kind: 'cancelled' }]);
    await hub.flush();
    expect((await hub.getJob(parent))?.status).toBe('cancelled');
  });
});

describe('roll-up', () => {
  it('rolls children up into the parent and finishes it when all children are done', async () => {
    const parent = uid('batch');
    await hub.createJob({ id: parent, owner: 'u1', name: 'Import playlist' });
    const kids = Array.from({ length: 10 }, () => uid());
    for (const k of kids) await hub.createJob({ id: k, owner: 'u1', parent });
    let p = (await hub.getJob(parent)) as JobState;
    expect(p.children).toMatchObject({ total: 10, completed: 0 });
    await Promise.all(kids.map((k) => hub.publish(k, [{ kind: 'progress', percent: 50 }])));
    await hub.flush();
    p = (await hub.getJob(parent)) as JobState;
    expect(p.progress.percent).toBe(50);
    expect(p.status).toBe('running');
    await Promise.all(kids.slice(0, 9).map((k) => hub.publish(k, [{ kind: 'completed' }])));
    await hub.flush();
    expect((await hub.getJob(parent))?.status).toBe('running');
    await hub.publish(kids[9]!, [{ kind: 'completed' }]);
    await hub.flush();
    p = (await hub.getJob(parent)) as JobState;
    expect(p.status).toBe('completed');
    expect(p.progress.percent).toBe(100);
    // The parent's log is gapless too.
    const events = await store.getEvents(parent, 0, 1000);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
  });

  it('fails the parent when a child fails', async () => {
    const parent = uid('batch');
    await hub.createJob({ id: parent, owner: 'u1' });
    const [a, b] = [uid(), uid()];
    await hub.createJob({ id: a, owner: 'u1', parent });
    await hub.createJob({ id: b, owner: 'u1', parent });
    await hub.publish(a, [{ kind: 'completed' }]);
    await hub.publish(b, [{ kind: 'failed', error: { message: 'boom' } }]);
    await hub.flush();
    const p = await hub.getJob(parent);
    expect(p?.status).toBe('failed');
    expect(p?.error?.code).toBe('CHILDREN_FAILED');
  });
});

describe('deletion', () => {
  it('removes a job with its children, tells subscribers, and refuses later reports', async () => {
    const parent = uid('batch');
    const child = uid();
    await hub.createJob({ id: parent, owner: 'u1' });
    await hub.createJob({ id: child, owner: 'u1', parent });
    const sub = collector();
    hub.subscribe({ user: 'u1' }, sub);
    await hub.deleteJob(parent);
    expect(sub.got.map((d) => [d.job, d.kind])).toEqual(
      expect.arrayContaining([
        [parent, 'deleted'],
        [child, 'deleted'],
      ]),
    );
    expect(await hub.getJob(child)).toBeNull();
    expect(await codeOf(hub.publish(child, [{ kind: 'progress', percent: 1 }]))).toBe('HW_ERR_JOB_DELETED');
    expect(await codeOf(hub.createJob({ id: parent, owner: 'u1' }))).toBe('HW_ERR_JOB_EXISTS');
  });
});

describe('limits and errors', () => {
  it('refuses metadata over the size limit, duplicates and unknown jobs with stable codes', async () => {
    const id = uid();
    expect(await codeOf(hub.createJob({ id, owner: 'u', metadata: { blob: 'x'.repeat(17 * 1024) } }))).toBe(
      'HW_ERR_PAYLOAD_TOO_LARGE',
    );
    await hub.createJob({ id, owner: 'u' });
    expect(await codeOf(hub.createJob({ id, owner: 'u' }))).toBe('HW_ERR_JOB_EXISTS');
    expect(await codeOf(hub.publish(uid('nope'), [{ kind: 'log', message: 'x' }]))).toBe('HW_ERR_NOT_FOUND');
    expect(await codeOf(hub.createJob({ id: uid(), owner: 'u', parent: uid('nope') }))).toBe(
      'HW_ERR_NOT_FOUND',
    );
  });

  it('long-polls until the next committed event', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u' });
    const waiting = hub.waitForChange(id, 1, 5_000);
    await hub.publish(id, [{ kind: 'progress', percent: 30 }]);
    expect((await waiting)?.seq).toBe(2);
    expect((await hub.waitForChange(id, 2, 10))?.seq).toBe(2);
  });

  it('ends a long-poll at once when its client left before the wait began', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u' });
    const gone = new AbortController();
    gone.abort();
    // Within the test's timeout only if the aborted signal is seen: the wait is a minute.
    expect((await hub.waitForChange(id, 1, 60_000, gone.signal))?.seq).toBe(1);
  });

  it('stops accepting writes once closed, after flushing what it accepted', async () => {
    const id = uid();
    await hub.createJob({ id, owner: 'u' });
    const pending = hub.publish(id, [{ kind: 'progress', percent: 1 }]);
    await hub.close();
    expect((await pending).seq).toBe(2);
    expect(await codeOf(hub.publish(id, [{ kind: 'progress', percent: 2 }]))).toBe('HW_ERR_SHUTTING_DOWN');
  });
});
