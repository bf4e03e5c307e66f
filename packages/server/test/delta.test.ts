import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { JobEvent, JobState } from '@headway/protocol';
import { describe, expect, it } from 'vitest';
import { TokenCache } from '../src/auth-cache.js';
import { Delivery } from '../src/delivery.js';
import { Outbox, type OutboxSocket } from '../src/outbox.js';
import { statePatch, statePatchJson } from '../src/state-patch.js';

/** A socket whose peer does not read until `drain`. */
class SlowSocket implements OutboxSocket {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Buffer[] = [];
  send(data: Buffer, _o: { binary: boolean }, cb?: (err?: Error) => void): void {
    this.sent.push(data);
    this.bufferedAmount += data.length;
    if (cb) this.pending.push(cb);
  }
  pending: ((err?: Error) => void)[] = [];
  drain(): void {
    this.bufferedAmount = 0;
    for (const cb of this.pending.splice(0)) cb();
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function states(n: number): JobState[] {
  const out: JobState[] = [];
  let s = { id: 'j', owner: 'alice', seq: 1, progress: { percent: 0 }, message: null, pad: 'x'.repeat(400) };
  out.push(s as unknown as JobState);
  for (let seq = 2; seq <= n; seq++) {
    s = { ...s, seq, progress: { percent: seq }, message: seq % 3 === 0 ? `m${seq}` : s.message } as typeof s;
    out.push(s as unknown as JobState);
  }
  return out;
}

function deliveries(all: JobState[]): Delivery[] {
  return all.map((s, i) => {
    const event = { job: 'j', seq: s.seq, kind: i === 0 ? 'created' : 'progress', data: {}, at: 'x' };
    return new Delivery(event as JobEvent, s, i === 0 ? null : all[i - 1]);
  });
}

describe('delta mode', () => {
  it('sends only the changed top-level fields, whatever their names', () => {
    const before = { id: 'j', seq: 1, a: { x: 1 }, b: [1, 2], gone: 1 } as unknown as JobState;
    const after = { id: 'j', seq: 2, a: { x: 1 }, b: [1, 3], added: true } as unknown as JobState;
    expect(statePatch(before, after)).toEqual({ seq: 2, b: [1, 3], added: true, gone: null });
    expect(statePatch(null, after)).toBe(after);
  });

  it('folds to the same states when a slow reader collapses progress (merged patches)', async () => {
    const all = states(400);
    const ds = deliveries(all);
    const socket = new SlowSocket();
    const box = new Outbox(
      socket,
      { softBytes: 2048, hardBytes: 1 << 20, writeThresholdBytes: 512 },
      {
        overflowed() {
          throw new Error('overflow');
        },
      },
    );
    box.setDelta(true);
    for (const d of ds) box.push(d);
    for (let i = 0; i < 1000 && socket.sent.length < 400; i++) {
      await tick();
      socket.drain();
      await tick();
    }
    const messages = socket.sent.map((b) => JSON.parse(b.toString()));
    expect(messages.length).toBeLessThan(400);
    let state: Record<string, unknown> | null = null;
    let last = 0;
    for (const m of messages) {
      expect(m.state).toBeUndefined();
      expect(m.seq).toBeGreaterThan(last);
      last = m.seq;
      state = { ...(state ?? {}), ...m.patch };
      expect(state).toEqual(all[m.seq - 1]);
    }
    expect(last).toBe(400);
  });

  it('gives every field to a reader without the state right before', async () => {
    const all = states(5);
    const ds = deliveries(all);
    const socket = new SlowSocket();
    const box = new Outbox(socket, { softBytes: 1 << 16, hardBytes: 1 << 20 }, { overflowed() {} });
    box.setDelta(true);
    box.push(ds[3]!);
    box.push(ds[4]!);
    await tick();
    const [first, second] = socket.sent.map((b) => JSON.parse(b.toString()));
    expect(first.patch).toEqual(all[3]);
    expect(second.patch).toEqual({ seq: 5, progress: { percent: 5 } });
  });
});

describe('statePatchJson', () => {
  it('makes the patch of two states once, and keeps no state alive that a later one replaced', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let [state] = states(1) as [JobState];
    const first = new WeakRef(state);
    for (let seq = 2; seq <= 200; seq++) {
      const next = { ...state, seq, progress: { percent: seq % 100 } } as JobState;
      const text = statePatchJson(state, next);
      expect(statePatchJson(state, next)).toBe(text);
      expect(JSON.parse(text)).toEqual(statePatch(state, next));
      state = next;
    }
    // A WeakRef's target lives until the end of the turn that made it.
    await tick();
    gc();
    expect(first.deref()).toBeUndefined();
    expect(state.seq).toBe(200);
  });
});

describe('TokenCache', () => {
  it('keeps a verified token until its exp', () => {
    let now = 100;
    const cache = new TokenCache(2, () => now);
    const p = { kind: 'user', user: 'u', jobs: null, admin: false, exp: 110 } as const;
    cache.set('t', p);
    expect(cache.get('t')).toBe(p);
    now = 110;
    expect(cache.get('t')).toBeUndefined();
  });
});
