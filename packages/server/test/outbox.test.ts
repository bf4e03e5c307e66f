import type { EventKind, JobEvent, JobState } from '@headway/protocol';
import { describe, expect, it } from 'vitest';
import { Delivery } from '../src/delivery.js';
import { Metrics } from '../src/metrics.js';
import { Outbox, type OutboxConfig, type OutboxSocket } from '../src/outbox.js';

/**
 * A socket whose peer reads only when told to: every write adds to
 * `bufferedAmount` until `drain()`, which also runs the pending write callbacks.
 * The real transport is covered end to end in ws.test.ts; this fake makes
 * queueing decisions deterministic.
 */
class FakeSocket implements OutboxSocket {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Buffer[] = [];
  private callbacks: ((err?: Error) => void)[] = [];

  constructor(private readonly reading = true) {}

  send(data: Buffer, _options: { binary: boolean }, cb?: (err?: Error) => void): void {
    this.sent.push(data);
    if (!this.reading) this.bufferedAmount += data.length;
    if (cb) {
      if (this.reading) process.nextTick(cb);
      else this.callbacks.push(cb);
    }
  }

  drain(): void {
    this.bufferedAmount = 0;
    for (const cb of this.callbacks.splice(0)) cb();
  }

  messages(): { job: string; seq: number; kind: EventKind }[] {
    return this.sent.map((b) => JSON.parse(b.toString()));
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function delivery(job: string, seq: number, kind: EventKind = 'progress', pad = 0): Delivery {
  const data = pad > 0 ? { message: 'x'.repeat(pad) } : {};
  const event = { job, seq, kind, data, at: '2024-05-01T12:00:00.000Z' } as JobEvent;
  const state = { id: job, owner: 'alice', parent: null, seq } as unknown as JobState;
  return new Delivery(event, state);
}

function outbox(socket: FakeSocket, config: Partial<OutboxConfig> = {}) {
  const metrics = new Metrics();
  let overflows = 0;
  const box = new Outbox(
    socket,
    { softBytes: 4096, hardBytes: 16384, metrics, ...config },
    { overflowed: () => overflows++ },
  );
  const count = async (name: 'collapsed' | 'slowReaderCloses' | 'messagesSent') =>
    (await metrics[name].get()).values.reduce((sum, v) => sum + v.value, 0);
  return { box, count, overflows: () => overflows };
}

describe('Outbox', () => {
  it('writes once per tick for every outbox, sharing the encoded bytes', async () => {
    const a = new FakeSocket();
    const b = new FakeSocket();
    const { box: boxA, count } = outbox(a);
    const { box: boxB } = outbox(b);
    const d1 = delivery('j', 1);
    const d2 = delivery('j', 2);
    for (const box of [boxA, boxB]) {
      box.push(d1);
      box.push(d2);
    }
    expect(a.sent).toHaveLength(0);
    await tick();
    expect(a.sent).toHaveLength(2);
    expect(b.sent).toHaveLength(2);
    // The very Buffer the delivery encoded, not a copy.
    expect(a.sent[0]).toBe(d1.native);
    expect(b.sent[0]).toBe(d1.native);
    expect(await count('messagesSent')).toBe(2);
  });

  it('drops duplicates and older seqs of a job, and keeps jobs apart', async () => {
    const socket = new FakeSocket();
    const { box } = outbox(socket);
    expect(box.push(delivery('a', 1))).toBe(true);
    expect(box.push(delivery('a', 2))).toBe(true);
    expect(box.push(delivery('a', 2))).toBe(false);
    expect(box.push(delivery('a', 1))).toBe(false);
    expect(box.push(delivery('b', 1))).toBe(true);
    expect(box.push(delivery('a', 3))).toBe(true);
    await tick();
    expect(socket.messages().map((m) => `${m.job}${m.seq}`)).toEqual(['a1', 'a2', 'b1', 'a3']);
  });

  it('keeps replies in order with deliveries', async () => {
    const socket = new FakeSocket();
    const { box } = outbox(socket);
    box.send(Buffer.from('{"type":"pong"}'));
    box.push(delivery('a', 1));
    box.send(Buffer.from('{"type":"ack","id":"x"}'));
    await tick();
    expect(socket.messages().map((m) => (m as { type?: string }).type ?? 'event')).toEqual([
      'pong',
      'event',
      'ack',
    ]);
  });

  it('holds deliveries behind a pending reply and drops the ones the reply covers', async () => {
    const socket = new FakeSocket();
    const { box } = outbox(socket);
    box.push(delivery('a', 1));
    const hold = box.hold();
    box.push(delivery('a', 2));
    box.push(delivery('b', 7));
    box.push(delivery('a', 3));
    await tick();
    expect(socket.messages().map((m) => m.seq)).toEqual([1]);
    box.release(hold, Buffer.from('{"type":"subscribed","id":"s"}'), [['a', 2]]);
    // Raced deliveries at or below the reply's seq are dropped when they arrive late, too.
    expect(box.push(delivery('a', 2))).toBe(false);
    await tick();
    expect(socket.messages().map((m) => (m.job ? `${m.job}${m.seq}` : 'subscribed'))).toEqual([
      'a1',
      'subscribed',
      'b7',
      'a3',
    ]);
  });

  it('stops writing above the write threshold and resumes when the socket has drained', async () => {
    const socket = new FakeSocket(false);
    const { box } = outbox(socket, { writeThresholdBytes: 1000, softBytes: 1e6, hardBytes: 2e6 });
    for (let seq = 1; seq <= 10; seq++) box.push(delivery('a', seq, 'log', 300));
    await tick();
    const first = socket.sent.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(10);
    expect(box.queuedBytes).toBeGreaterThan(0);
    await tick();
    expect(socket.sent).toHaveLength(first);
    socket.drain();
    await tick();
    expect(socket.sent.length).toBeGreaterThan(first);
    while (socket.sent.length < 10) {
      socket.drain();
      await tick();
    }
    expect(socket.messages().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(box.queuedBytes).toBe(0);
  });

  it('collapses queued progress of a job to the newest past the soft limit, never terminal events', async () => {
    const socket = new FakeSocket(false);
    socket.bufferedAmount = 1e6; // the peer stopped reading long ago
    const { box, count } = outbox(socket, { softBytes: 2000, hardBytes: 1e6 + 50_000 });
    let seqA = 0;
    let seqB = 0;
    for (let i = 0; i < 50; i++) {
      box.push(delivery('a', ++seqA, 'progress', 100));
      box.push(delivery('b', ++seqB, 'progress', 100));
      if (i === 20) box.push(delivery('a', ++seqA, 'stage', 100));
      if (i === 30) box.push(delivery('b', ++seqB, 'log', 100));
    }
    box.push(delivery('a', ++seqA, 'completed', 100));
    box.push(delivery('b', ++seqB, 'progress', 100));
    expect(await count('collapsed')).toBeGreaterThan(90);
    expect(box.queuedBytes).toBeLessThan(2000);
    socket.drain();
    while (box.queuedBytes > 0) {
      socket.drain();
      await tick();
    }
    const got = socket.messages().map((m) => `${m.job}:${m.kind}:${m.seq}`);
    // Non-collapsible events stay, in order; only the newest progress of each job survives.
    expect(got.filter((g) => !g.includes(':progress:'))).toEqual([
      'a:stage:22',
      'b:log:32',
      'a:completed:52',
    ]);
    expect(got.filter((g) => g.startsWith('b:progress'))).toEqual(['b:progress:52']);
    expect(got.filter((g) => g.startsWith('a:progress'))).toEqual(['a:progress:51']);
    for (const job of ['a', 'b']) {
      const seqs = socket
        .messages()
        .filter((m) => m.job === job)
        .map((m) => m.seq);
      expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    }
  });

  it('gives up past the hard limit without ever holding more than it', async () => {
    const socket = new FakeSocket(false);
    socket.bufferedAmount = 10_000;
    const { box, count, overflows } = outbox(socket, { softBytes: 12_000, hardBytes: 20_000 });
    let accepted = 0;
    for (let seq = 1; seq <= 100; seq++) if (box.push(delivery('a', seq, 'log', 500))) accepted++;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(100);
    expect(overflows()).toBe(1);
    expect(await count('slowReaderCloses')).toBe(1);
    expect(box.peakBytes).toBeLessThanOrEqual(20_000);
    expect(box.isClosed).toBe(true);
    expect(box.queuedBytes).toBe(0);
    expect(box.push(delivery('a', 101, 'completed'))).toBe(false);
  });

  it('accepts a large reply on a connection that is not behind', async () => {
    const socket = new FakeSocket();
    const { box, overflows } = outbox(socket, { softBytes: 1000, hardBytes: 2000 });
    box.send(Buffer.alloc(5000, 0x20));
    expect(overflows()).toBe(0);
    await tick();
    expect(socket.sent).toHaveLength(1);
  });

  it('drops its queue once the socket is no longer open, and after dispose', async () => {
    const socket = new FakeSocket();
    const { box } = outbox(socket);
    box.push(delivery('a', 1));
    socket.readyState = 2;
    await tick();
    expect(socket.sent).toHaveLength(0);
    expect(box.queuedBytes).toBe(0);
    socket.readyState = 1;
    box.push(delivery('a', 2));
    box.dispose();
    await tick();
    expect(socket.sent).toHaveLength(0);
    expect(box.push(delivery('a', 3))).toBe(false);
  });
});
