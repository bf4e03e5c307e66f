/**
 * What one WebSocket client may send: a token bucket for its message rate, and
 * counts over a window of what it got wrong, past which the connection closes.
 */

/** Window over which invalid messages and rate-limited drops are counted, ms. */
const ABUSE_WINDOW_MS = 10_000; // 10 seconds
/** Dropped messages tolerated per window, in multiples of the per-second rate, before a flood closes the connection. */
const FLOOD_FACTOR = 2;

/**
 * How often something happened in the current window of `ABUSE_WINDOW_MS`; a
 * new window starts at the first occurrence after the previous one ended.
 */
export class WindowCount {
  private count = 0;
  private since = 0;

  /** Count one occurrence at `now` (ms since epoch); returns the window's count, this one included. */
  add(now: number): number {
    if (now - this.since > ABUSE_WINDOW_MS) {
      this.since = now;
      this.count = 0;
    }
    return ++this.count;
  }
}

/**
 * What to do with one message: take it, drop it (over the rate), or close the
 * connection (a flood: more than `FLOOD_FACTOR` × the rate dropped in one window).
 */
export type RateVerdict = 'take' | 'drop' | 'flood';

/** A token bucket of `perSecond` messages a second, with a burst of the same size. */
export class MessageRate {
  private tokens: number;
  private refilledAt: number;
  /** Messages dropped in the current window; made at the first one dropped. */
  private dropped: WindowCount | null = null;

  constructor(
    private readonly perSecond: number,
    now: number = Date.now(),
  ) {
    this.tokens = perSecond;
    this.refilledAt = now;
  }

  /** Spend a token on a message arriving at `now` (ms since epoch). */
  take(now: number): RateVerdict {
    const rate = this.perSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'take';
    }
    return (this.dropped ??= new WindowCount()).add(now) > FLOOD_FACTOR * rate ? 'flood' : 'drop';
  }
}
