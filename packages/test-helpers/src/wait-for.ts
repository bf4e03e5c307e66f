/**
 * The one way a test waits for something to happen: vitest's `vi.waitFor`,
 * polling a check that answers "not yet" with undefined, null or false.
 */
import { vi } from 'vitest';

/** How long `waitFor` waits by default, ms. */
export const WAIT_FOR_TIMEOUT_MS = 5000;
/** How often `waitFor` polls, ms. */
const WAIT_FOR_INTERVAL_MS = 10;

/** What a check returns once it holds: anything but undefined, null or false. */
export type Ready<T> = Exclude<T, undefined | null | false>;

/**
 * Poll `check` until it returns something other than undefined, null or false
 * (or stops throwing: an `expect` inside works), and resolve with that; reject
 * after `timeoutMs` with "timed out waiting for <what>" or the check's last error.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what = 'a condition',
  timeoutMs = WAIT_FOR_TIMEOUT_MS,
): Promise<Ready<T>> {
  return vi.waitFor(
    async () => {
      const value = await check();
      if (value === undefined || value === null || value === false) {
        throw new Error(`timed out waiting for ${what}`);
      }
      return value as Ready<T>;
    },
    { timeout: timeoutMs, interval: WAIT_FOR_INTERVAL_MS },
  );
}
