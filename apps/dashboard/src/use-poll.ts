import type { HeadwayClientError } from '@headway/client';
import { type DependencyList, useEffect, useState } from 'react';

/** One reading; `stopped()` turns true once the view has moved on, so a late answer is dropped. */
export type PollRead = (stopped: () => boolean) => Promise<void>;

/**
 * Read now, then every `intervalMs` while the page is visible (a hidden tab asks
 * the hub for nothing). `start` makes the reader when the effect starts, so that
 * what one reading leaves for the next stays in its closure; null reads nothing.
 * Returns the error code of the last reading that failed, null once one succeeds.
 */
export function usePoll(
  start: () => PollRead | null,
  intervalMs: number,
  deps: DependencyList,
): string | null {
  const [error, setError] = useState<string | null>(null);
  const effect = () => {
    const read = start();
    if (read === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const isStopped = () => stopped;
    const poll = async () => {
      if (document.visibilityState === 'visible') {
        try {
          await read(isStopped);
          if (!stopped) setError(null);
        } catch (err) {
          if (!stopped) setError((err as HeadwayClientError).code ?? 'HW_ERR_CLIENT_NETWORK');
        }
      }
      if (!stopped) timer = setTimeout(poll, intervalMs);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  };
  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller names what `start` depends on.
  useEffect(effect, deps);
  return error;
}
