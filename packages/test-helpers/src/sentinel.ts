/**
 * "Nothing more arrived" without sleeping: send a sentinel after what is under
 * test, wait for it, and look at what came before it. Whatever the channel
 * delivers in order (one socket, one subscriber connection) cannot arrive late
 * past the sentinel, so a stray or duplicate message is caught, not raced.
 */
import { waitFor } from './wait-for.js';

/**
 * Call `send` (which sends the sentinel, or does nothing when it is already on
 * its way), wait until `received()` holds an item matching `isSentinel`, and
 * resolve with the items before it. `received` reads what arrived so far, in order.
 */
export async function receivedBefore<T>(
  received: () => readonly T[],
  isSentinel: (item: T) => boolean,
  send: () => unknown,
  timeoutMs?: number,
): Promise<T[]> {
  await send();
  return waitFor(
    () => {
      const items = received();
      const i = items.findIndex(isSentinel);
      return i === -1 ? undefined : items.slice(0, i);
    },
    'the sentinel',
    timeoutMs,
  );
}
