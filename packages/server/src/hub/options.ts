/** The hub's options and their defaults, and what a resuming subscriber gets. */
import type { JobEvent, JobState } from '@headway/protocol';
import type { Bus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import type { StallOptions } from '../state/index.js';
import type { Store } from '../store/store.js';

export interface HubOptions {
  store: Store;
  /** Defaults to the in-process bus. */
  bus?: Bus;
  metrics?: Metrics;
  /** Most events replayed to a resuming subscriber before it gets the state instead. Default 1000. */
  replayLimit?: number;
  /** Largest serialized `metadata` or `result`, bytes. Default 16 KiB. */
  maxJsonBytes?: number;
  /** Job states kept in memory (least recently used are evicted). Default 10,000. */
  cacheSize?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
  /**
   * A followed job that has been quiet this long is compared with the store, to
   * find deliveries the bus lost at the end of a burst, ms; 0 disables the check.
   * Default 5000 with a shared bus, 0 with the in-process one (which loses nothing).
   */
  idleCheckMs?: number;
  /** Jobs whose last dispatched seq is remembered; those with job subscribers are always kept. Default 100,000. */
  trackSize?: number;
  /** When a running job counts as stalled, and how often to look; see `StallOptions` for the defaults. */
  stall?: Partial<StallOptions>;
  /** How long a job kind's learned durations are used before they are read again from the store, ms. Default 30,000. */
  historyRefreshMs?: number;
  /** Failures of background work (learning durations, marking stalls), which never fail a request. */
  onError?: (err: unknown) => void;
}

export const hubDefaults = {
  replayLimit: 1000,
  maxJsonBytes: 16 * 1024, // 16 KiB
  cacheSize: 10_000,
  idleCheckMs: 5_000, // 5 seconds
  trackSize: 100_000,
  historyRefreshMs: 30_000, // 30 seconds
} as const;

export interface ResumeResult {
  state: JobState;
  /** Events after `since`, oldest first, when they could all be replayed. */
  events: JobEvent[];
  recovered: boolean;
}
