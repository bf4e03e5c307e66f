import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { JobState } from '@headway/protocol';
import { jobWrite, runningJob } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Delivery } from '../src/delivery.js';
import { OrderedDispatch } from '../src/hub/ordered-dispatch.js';
import { Topics } from '../src/hub/topics.js';
import { deletion } from '../src/hub/writes.js';
import { SqliteStore } from '../src/store/sqlite.js';

let dir: string;
let store: SqliteStore;
let topics: Topics;
let dispatch: OrderedDispatch;
/** What the job's one subscriber received, as seqs. */
let got: number[];
const subscriber = { deliver: (d: Delivery) => got.push(d.seq) };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-dispatch-'));
  store = new SqliteStore({ path: join(dir, 'headway.db') });
  await store.migrate();
  // The in-process bus's part in the registry: it listens at once and loses nothing.
  topics = new Topics({ shared: false, subscribe: async () => {}, unsubscribe() {} });
  dispatch = new OrderedDispatch({
    store,
    topics,
    metrics: undefined,
    replayLimit: 100,
    trackSize: 100,
    idleCheckMs: 0,
    dispatched: () => {},
    deletion: (state) => deletion(state, new Date().toISOString()),
  });
  got = [];
  topics.add({ job: 'a' }, subscriber);
});

afterEach(async () => {
  dispatch.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The delivery of job a's event `seq`, as the bus would carry it. */
function delivery(seq: number): Delivery {
  const write = jobWrite('a', seq - 1, seq);
  return new Delivery(write.events[0]!, runningJob('a', seq));
}

describe('OrderedDispatch', () => {
  it('hands deliveries on in seq order and drops the ones it has already dispatched', () => {
    dispatch.follow(runningJob('a', 1));
    for (const seq of [2, 3, 2, 3, 4]) dispatch.receive(delivery(seq));
    expect(got).toEqual([2, 3, 4]);
  });

  it('a seq gap: holds what comes next, reads the missed events from the store, then releases in order', async () => {
    await store.commit([jobWrite('a', 0, 5)]);
    dispatch.follow(runningJob('a', 1));
    dispatch.receive(delivery(4));
    expect(dispatch.isFollowed('a')).toBe(false);
    dispatch.receive(delivery(6));
    dispatch.receive(delivery(5));
    await vi.waitFor(() => expect(got).toEqual([2, 3, 4, 5, 6]));
    expect(dispatch.isFollowed('a')).toBe(true);
  });

  it('gives a subscriber read behind the tracking the tracked state, unless it is an earlier job of the id', () => {
    // A delivery that came while the subscriber's state was read started the tracking.
    dispatch.receive(delivery(4));
    const read = runningJob('a', 2);
    expect(dispatch.follow(read)).toMatchObject({ seq: 4 });
    expect(dispatch.follow(runningJob('a', 5))).toMatchObject({ seq: 5 });
    // The id swept by retention and used again: its new state stands.
    const again = runningJob('a', 2, { createdAt: '2030-01-01T00:00:00.000Z' });
    expect(dispatch.follow(again)).toBe(again);
  });

  it("keeps a finished job's fields for what follows its end, not the delivered state and what hangs on it", async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    dispatch.follow(runningJob('a', 1));
    let ended: JobState | null = runningJob('a', 2, { status: 'completed', progress: { percent: 100 } });
    const delivered = new WeakRef(ended);
    dispatch.receive(
      new Delivery({ job: 'a', seq: 2, kind: 'completed', data: {}, at: ended.updatedAt }, ended),
    );
    ended = null;
    // A WeakRef's target lives until the end of the turn that made it.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(delivered.deref()).toBeUndefined();
    // A subscriber read behind gets the job as it ended, and the job's deletion its last state.
    expect(dispatch.follow(runningJob('a', 1))).toMatchObject({ seq: 2, status: 'completed' });
    const deleted: Delivery[] = [];
    topics.add({ job: 'a' }, { deliver: (d) => void deleted.push(d) });
    const gone = runningJob('a', 3, { status: 'completed' });
    dispatch.receive(new Delivery({ job: 'a', seq: 3, kind: 'deleted', data: {}, at: gone.updatedAt }, gone));
    expect(deleted.map((d) => [d.seq, d.prev?.status])).toEqual([[3, 'completed']]);
  });

  it('keeps following a job while a topic covers it, and stops once none does', () => {
    dispatch.follow(runningJob('a', 1));
    dispatch.unfollow('a');
    expect(dispatch.isFollowed('a')).toBe(true);
    topics.remove({ job: 'a' }, subscriber);
    dispatch.unfollow('a');
    expect(dispatch.size).toBe(0);
  });
});
