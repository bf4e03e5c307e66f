/**
 * Demo workers for `headway start --demo`: simulated media pipelines, playlist
 * imports and the occasional failure, so that the dashboard shows realistic
 * movement the moment the hub starts.
 *
 * The workers are built on `@headway/worker`, exactly like a customer's worker:
 * they hold an API key, create jobs and child jobs, report stages, progress,
 * logs and outcomes (throttled, batched across jobs, retried with idempotency
 * keys by the SDK), and honour cancel and pause through `checkpoint()`. Nothing
 * here touches the hub's internals.
 *
 * Pace: every running job reports at most once per tick (250 ms of real time,
 * so about 4 reports a second), and each tick advances the simulation by
 * `0.25 s × speed`. Backoff after refused creations runs in real time.
 *
 * Files: `runner.ts` (the worker, lanes, stop), `media-pipeline.ts` and
 * `playlist-import.ts` (the two kinds of work), `simulation.ts` (what they
 * share), `ticker.ts` (the pace), `fixtures.ts` (names and sizes).
 */
import type { DemoHandle, DemoOptions } from './options.js';
import { DemoRunner } from './runner.js';

export type { DemoHandle, DemoLogger, DemoOptions } from './options.js';
export { Ticker } from './ticker.js';

/**
 * Start the demo workers against a running hub. Never throws and never rejects:
 * every error is logged through `options.logger` and the workers carry on.
 */
export function startDemo(options: DemoOptions): DemoHandle {
  let runner: DemoRunner;
  try {
    runner = new DemoRunner(options);
  } catch (err) {
    // An unusable URL or key: there is nothing to run.
    options.logger?.warn({ err: (err as Error)?.message ?? String(err) }, 'demo: cannot start');
    return { stop: async () => {} };
  }
  runner.start();
  return { stop: () => runner.stop() };
}
