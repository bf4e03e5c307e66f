/**
 * Closing connections at their browser token's `exp`. The heartbeat sweep also
 * closes connections with expired tokens, but only every `heartbeatMs` (30 s by
 * default): an expired token would keep receiving for that long.
 *
 * Connections are grouped by the second their token expires in, with one timer
 * per second that has any: tokens are signed with the same lifetime, so a
 * process with thousands of connections holds a few timers, not one each.
 */
import type { Principal } from '../auth.js';

/** Longest delay `setTimeout` takes (about 24.8 days); a longer wait is made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Something closed when its token expires. */
export interface Expiring {
  expire(): void;
}

/** A pending expiry; `cancel` when the connection ends first. */
export interface TokenExpiry {
  cancel(): void;
}

const NEVER: TokenExpiry = { cancel() {} };

/** The second a principal's token expires in; null for API keys and tokens without `exp`. */
export function expirySecond(principal: Principal | null): number | null {
  return principal?.kind === 'user' && principal.exp !== null ? principal.exp : null;
}

interface Due {
  timer: NodeJS.Timeout | null;
  items: Set<Expiring>;
}

/** Items by the second they expire in; each second with items has one unref'd timer. */
export class ExpirySchedule {
  private readonly due = new Map<number, Due>();

  /** Call `item.expire()` once `second` (seconds since epoch) has passed. */
  add(second: number, item: Expiring): void {
    let due = this.due.get(second);
    if (!due) {
      due = { timer: null, items: new Set() };
      this.due.set(second, due);
      this.arm(second, due);
    }
    due.items.add(item);
  }

  /** Forget `item` (it ended before its expiry). */
  delete(second: number, item: Expiring): void {
    const due = this.due.get(second);
    if (!due?.items.delete(item) || due.items.size > 0) return;
    if (due.timer) clearTimeout(due.timer);
    this.due.delete(second);
  }

  /** Seconds with pending items, for tests and diagnostics. */
  get pendingSeconds(): number {
    return this.due.size;
  }

  private arm(second: number, due: Due): void {
    const wait = Math.min(Math.max(0, second * 1000 - Date.now()), MAX_TIMER_MS);
    due.timer = setTimeout(() => this.fire(second, due), wait);
    due.timer.unref();
  }

  private fire(second: number, due: Due): void {
    due.timer = null;
    // A wait longer than one timer takes is made of several.
    if (Date.now() < second * 1000) {
      this.arm(second, due);
      return;
    }
    this.due.delete(second);
    for (const item of due.items) item.expire();
  }
}

/** The schedule of every connection and stream of the process. */
export const tokenExpiries = new ExpirySchedule();

/**
 * Call `onExpire` once the principal's token has expired; never for an API key.
 * The timer is unref'd: it never keeps the process alive.
 */
export function atTokenExpiry(principal: Principal | null, onExpire: () => void): TokenExpiry {
  const second = expirySecond(principal);
  if (second === null) return NEVER;
  const item: Expiring = { expire: onExpire };
  tokenExpiries.add(second, item);
  return { cancel: () => tokenExpiries.delete(second, item) };
}
