import { EventEmitter, once } from 'node:events';
import { setInterval } from 'node:timers/promises';

/** Real time between two ticks: every running job reports at most once per tick. */
export const TICK_MS = 250;

/**
 * One clock shared by every demo job, so that their reports fall in the same
 * turn of the event loop and the worker sends them in one request.
 */
export class Ticker {
  /** Ticks so far: the demo's time, in units of `intervalMs`. */
  ticks = 0;
  private readonly ticked = new EventEmitter();

  constructor(readonly intervalMs: number = TICK_MS) {
    // Every running job waits here at once; that is no listener leak.
    this.ticked.setMaxListeners(0);
  }

  /** Tick until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    try {
      for await (const _ of setInterval(this.intervalMs, undefined, { signal })) {
        this.ticks++;
        this.ticked.emit('tick');
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /** Resolves at the next tick; rejects with an `AbortError` once `signal` aborts. */
  async next(signal: AbortSignal): Promise<void> {
    await once(this.ticked, 'tick', { signal });
  }
}
