/** How far apart retries of one request, or reconnects of one client, are spread. */
export interface BackoffOptions {
  /** Upper bound of the first delay, ms. */
  initialDelayMs: number;
  /** Upper bound of any delay, ms (a longer `Retry-After` from the hub still wins). */
  maxDelayMs: number;
}

/**
 * Delay before retry number `attempt` (1-based): a random delay up to
 * `initialDelayMs × 2^(attempt-1)`, capped at `maxDelayMs` ("full jitter", so
 * that clients the hub turned away together do not come back together), and
 * never shorter than the hub's `Retry-After`.
 *
 * Every Headway package that retries or reconnects uses this one rule.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = cap * random();
  return retryAfterMs !== undefined ? Math.max(retryAfterMs, jittered) : jittered;
}
