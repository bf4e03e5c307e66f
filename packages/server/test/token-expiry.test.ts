import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Expiring, ExpirySchedule } from '../src/transports/token-expiry.js';

describe('ExpirySchedule', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const item = (): Expiring & { expired: number } => ({
    expired: 0,
    expire() {
      this.expired++;
    },
  });

  it('expires each item once, when its second has passed, with one timer per second', () => {
    const schedule = new ExpirySchedule();
    const now = Date.now() / 1000;
    const [a, b, c] = [item(), item(), item()];
    schedule.add(now + 5, a);
    schedule.add(now + 5, b);
    schedule.add(now + 9, c);
    expect(schedule.pendingSeconds).toBe(2);
    expect(vi.getTimerCount()).toBe(2);

    vi.advanceTimersByTime(4_999);
    expect([a.expired, b.expired, c.expired]).toEqual([0, 0, 0]);
    vi.advanceTimersByTime(1);
    expect([a.expired, b.expired, c.expired]).toEqual([1, 1, 0]);
    vi.advanceTimersByTime(4_000);
    expect([a.expired, b.expired, c.expired]).toEqual([1, 1, 1]);
    expect(schedule.pendingSeconds).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('forgets a deleted item, and clears the timer of a second left empty', () => {
    const schedule = new ExpirySchedule();
    const second = Date.now() / 1000 + 3;
    const [a, b] = [item(), item()];
    schedule.add(second, a);
    schedule.add(second, b);
    schedule.delete(second, a);
    expect(vi.getTimerCount()).toBe(1);
    schedule.delete(second, b);
    expect(vi.getTimerCount()).toBe(0);
    expect(schedule.pendingSeconds).toBe(0);
    // Deleting what is not there changes nothing.
    schedule.delete(second, a);
    vi.advanceTimersByTime(10_000);
    expect([a.expired, b.expired]).toEqual([0, 0]);
  });

  it('waits longer than one timer can, in several', () => {
    const schedule = new ExpirySchedule();
    const day = 24 * 3600;
    const a = item();
    schedule.add(Date.now() / 1000 + 40 * day, a);
    vi.advanceTimersByTime(30 * day * 1000);
    expect(a.expired).toBe(0);
    expect(schedule.pendingSeconds).toBe(1);
    vi.advanceTimersByTime(10 * day * 1000);
    expect(a.expired).toBe(1);
  });

  it('expires at once what is already past', () => {
    const schedule = new ExpirySchedule();
    const a = item();
    schedule.add(Date.now() / 1000 - 1, a);
    vi.advanceTimersByTime(0);
    expect(a.expired).toBe(1);
  });
});
