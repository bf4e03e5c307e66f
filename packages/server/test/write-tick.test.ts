/**
 * The write scheduler: writers queued during a turn are written once, at the
 * next tick, or at once when a caller that has queued a whole batch asks.
 */
import { describe, expect, it } from 'vitest';
import { scheduleWrite, type TickWriter, writeNow } from '../src/write-tick.js';

function writer(): TickWriter & { flushes: number } {
  const w = {
    flushes: 0,
    flush() {
      w.flushes++;
    },
    dispose() {},
  };
  return w;
}

const nextTick = () => new Promise((resolve) => setImmediate(resolve));

describe('the write tick', () => {
  it('writes each queued writer once at the next tick', async () => {
    const a = writer();
    scheduleWrite(a);
    scheduleWrite(a);
    expect(a.flushes).toBe(0);
    await nextTick();
    expect(a.flushes).toBe(1);
  });

  it('writes now when asked, and not again at the tick', async () => {
    const a = writer();
    const b = writer();
    scheduleWrite(a);
    scheduleWrite(b);
    writeNow();
    expect([a.flushes, b.flushes]).toEqual([1, 1]);
    await nextTick();
    expect([a.flushes, b.flushes]).toEqual([1, 1]);
    // Queued after: written at the next tick as usual.
    scheduleWrite(a);
    await nextTick();
    expect(a.flushes).toBe(2);
    // With nothing queued, asking writes nothing.
    writeNow();
    expect([a.flushes, b.flushes]).toEqual([2, 1]);
  });
});
