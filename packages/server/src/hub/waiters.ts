import type { JobState } from '@headway/protocol';

/** What long-poll needs of the hub. */
export interface WaitersContext {
  /**
   * True when other processes write too: their changes then arrive only on the
   * topics this process listens to, so a waiter listens to its job's.
   */
  readonly shared: boolean;
  /** Listen to the job's topic until the returned function is called; resolves once the bus listens. */
  watch(jobId: string): Promise<() => void>;
  /** The job's committed state, read again from the store when it may be behind; null when there is no job. */
  committed(jobId: string): Promise<JobState | null>;
  /** The job's committed state if it is in memory (kept up to date while it is watched). */
  cached(jobId: string): JobState | undefined;
}

/**
 * Long-poll: requests parked until their job's committed seq passes the one they
 * saw. `wake` is called for every dispatched delivery of the job.
 */
export class Waiters {
  private readonly byJob = new Map<string, Set<() => void>>();

  constructor(private readonly ctx: WaitersContext) {}

  /**
   * Resolves with the job's state as soon as its committed seq passes `since`, or
   * after `timeoutMs` with the current state. Null when there is no job.
   */
  async waitForChange(
    jobId: string,
    since: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JobState | null> {
    // Listen to the job's topic before reading it, so that no change falls in between.
    const unwatch = this.ctx.shared && timeoutMs > 0 ? await this.ctx.watch(jobId) : null;
    try {
      const state = await this.ctx.committed(jobId);
      if (!state) return null;
      if (state.seq > since || timeoutMs <= 0) return state;
      await this.park(jobId, timeoutMs, signal);
      return this.ctx.cached(jobId) ?? (await this.ctx.committed(jobId));
    } finally {
      unwatch?.();
    }
  }

  private park(jobId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      // Aborted already (the client left before the wait began): its event has fired.
      if (signal?.aborted) return resolve();
      let set = this.byJob.get(jobId);
      if (!set) this.byJob.set(jobId, (set = new Set()));
      const waiting = set;
      const timer = setTimeout(done, timeoutMs);
      const byJob = this.byJob;
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiting.delete(done);
        if (waiting.size === 0 && byJob.get(jobId) === waiting) byJob.delete(jobId);
        resolve();
      }
      waiting.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Answer the job's waiters: a delivery of it was dispatched. */
  wake(jobId: string): void {
    const waiting = this.byJob.get(jobId);
    if (waiting) for (const done of [...waiting]) done();
  }

  /** Answer every waiter (the hub is closing). */
  wakeAll(): void {
    for (const waiting of this.byJob.values()) for (const done of [...waiting]) done();
  }

  /** Whether a request waits on the job (its cache entry is then kept). */
  has(jobId: string): boolean {
    return this.byJob.has(jobId);
  }

  get size(): number {
    return this.byJob.size;
  }
}
