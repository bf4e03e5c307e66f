/**
 * The current time, shared by every component that shows relative times
 * ("updated 3 s ago", a running stage's duration): one timer for the page,
 * ticking once a second while anything listens.
 */
import { useSyncExternalStore } from 'react';

const TICK_MS = 1_000;
const listeners = new Set<() => void>();
let now = Date.now();
let timer: ReturnType<typeof setInterval> | undefined;

function subscribe(notify: () => void): () => void {
  listeners.add(notify);
  if (!timer) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
      for (const listener of listeners) listener();
    }, TICK_MS);
  }
  return () => {
    listeners.delete(notify);
    if (listeners.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

/** Milliseconds since epoch, updated once a second. */
export function useNow(): number {
  return useSyncExternalStore(subscribe, () => now);
}
