import type { Ticker } from './ticker.js';

export interface DemoLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface DemoOptions {
  /** Base URL of the hub, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** An API key of the hub. */
  apiKey: string;
  /** Owner of every demo job (the user whose dashboard shows them). */
  owner: string;
  logger?: DemoLogger;
  /** Speed factor for tests: 1 = real time. */
  speed?: number;
  /** Most jobs running at once. Default 6. */
  concurrency?: number;
  /**
   * The clock that paces every job: each running job reports at most once per
   * tick. Default: a tick every 250 ms. Tests pass their own to count ticks
   * instead of reading the wall clock; the demo starts it and stops it.
   */
  ticker?: Ticker;
}

export interface DemoHandle {
  /**
   * Stop starting jobs, abort every loop and timer, mark the jobs still running
   * as cancelled (best effort, bounded), and resolve once everything has settled.
   */
  stop(): Promise<void>;
}

export const noopLogger: DemoLogger = { info() {}, warn() {} };
