import { setTimeout as sleep } from 'node:timers/promises';
import { HeadwayWorker, type JobHandle } from '@headway/worker';
import { mediaLanes } from './media-pipeline.js';
import { type DemoLogger, type DemoOptions, noopLogger } from './options.js';
import { playlistLane } from './playlist-import.js';
import { messageOf, type NewJob, type Simulation } from './simulation.js';
import { Ticker } from './ticker.js';

/** Time `stop()` allows for the jobs under way to settle and for the final "demo stopped" reports. */
const FINAL_REPORT_MS = 1_500;
/** Real time before a lane that failed unexpectedly starts over. */
const LANE_RESTART_MS = 5_000;
const STOPPED = 'Demo stopped';

/**
 * The demo workers: one `HeadwayWorker` for every job, lanes of media jobs and
 * one lane of playlist imports, all paced by one `Ticker`.
 */
export class DemoRunner implements Simulation {
  readonly worker: HeadwayWorker;
  readonly owner: string;
  readonly logger: DemoLogger;
  readonly signal: AbortSignal;
  readonly dt: number;
  private readonly controller = new AbortController();
  private readonly ticker: Ticker;
  private readonly speed: number;
  private readonly concurrency: number;
  /** Jobs created and not yet done with; batch parents are marked, so that they are stopped last. */
  private readonly open = new Map<JobHandle, 'job' | 'batch'>();
  /** Aborted when the demo stops or the job ends, made once per job rather than once per tick. */
  private readonly jobSignals = new WeakMap<JobHandle, AbortSignal>();
  private lanes: Promise<void>[] = [];
  private stopping: Promise<void> | null = null;

  constructor(options: DemoOptions) {
    this.logger = options.logger ?? noopLogger;
    this.owner = options.owner;
    this.signal = this.controller.signal;
    const speed = options.speed ?? 1;
    this.speed = Number.isFinite(speed) && speed > 0 ? speed : 1;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 6));
    this.ticker = options.ticker ?? new Ticker();
    this.dt = (this.ticker.intervalMs / 1000) * this.speed;
    const logger = this.logger;
    this.worker = new HeadwayWorker({
      url: options.url,
      apiKey: options.apiKey,
      // What `stop()` allows for the final reports: the hub may be shutting down too.
      closeTimeoutMs: FINAL_REPORT_MS,
      retry: { initialDelayMs: 250, maxDelayMs: 5_000, maxAttempts: 6 },
      onError(err) {
        logger.warn({ job: err.job, code: err.code, err: err.message }, 'demo: report refused');
      },
      onRetry({ request, attempt, delayMs, error }) {
        logger.warn(
          { request, attempt, delayMs, code: error?.code, err: error?.message },
          'demo: retrying request',
        );
      },
    });
  }

  start(): void {
    void this.ticker.run(this.signal);
    // A playlist import runs two or three of its videos at once (never more than
    // concurrency - 1); the other slots run media jobs. The parent itself takes no
    // slot: the hub rolls it up from its children.
    const batchWidth = this.concurrency >= 3 ? Math.min(3, this.concurrency - 1) : 0;
    for (const [i, run] of mediaLanes(this, this.concurrency - batchWidth).entries()) {
      this.lanes.push(this.lane(`media-${i}`, run));
    }
    if (batchWidth > 0) this.lanes.push(this.lane('batch', () => playlistLane(this, batchWidth)));
    this.logger.info(
      { owner: this.owner, concurrency: this.concurrency, speed: this.speed },
      'demo workers started',
    );
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      this.reportStopped();
      // Lanes end at their next wait; one that is creating a job gets its answer
      // first, so that the new job is marked stopped too rather than left open.
      const deadline = new AbortController();
      await Promise.race([
        Promise.allSettled(this.lanes),
        sleep(FINAL_REPORT_MS, undefined, { signal: deadline.signal }).catch(() => {}),
      ]);
      deadline.abort();
      // Delivers what is queued (bounded), then ends every request, socket and timer.
      await this.worker.close();
      await Promise.allSettled(this.lanes);
      this.logger.info({}, 'demo workers stopped');
    })();
    return this.stopping;
  }

  tick(job?: JobHandle): Promise<void> {
    if (!job) return this.ticker.next(this.signal);
    let signal = this.jobSignals.get(job);
    if (!signal) this.jobSignals.set(job, (signal = AbortSignal.any([this.signal, job.signal])));
    return this.ticker.next(signal);
  }

  simSleep(ms: number): Promise<void> {
    return this.sleep(ms / this.speed);
  }

  sleep(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.signal });
  }

  async create(input: NewJob, place: { parent?: JobHandle; batch?: boolean } = {}): Promise<JobHandle> {
    const job = place.parent
      ? await place.parent.child(input)
      : await this.worker.createJob({ ...input, owner: this.owner });
    this.open.set(job, place.batch ? 'batch' : 'job');
    if (this.signal.aborted) {
      // Created while the demo was stopping: it stops at once.
      this.reportStopped();
      this.signal.throwIfAborted();
    }
    return job;
  }

  release(job: JobHandle): void {
    this.open.delete(job);
  }

  /**
   * Mark the jobs still open as cancelled ("demo stopped"), so that they do not
   * stay `running` forever in the hub: items first, then their batch parents.
   * `close()` delivers the reports, for a bounded time.
   */
  private reportStopped(): void {
    const jobs = [...this.open].sort(([, a], [, b]) => (a === b ? 0 : a === 'job' ? -1 : 1));
    this.open.clear();
    for (const [job] of jobs) job.cancelled(STOPPED).catch(() => {});
  }

  /**
   * Run a lane until the demo stops. A lane never rejects: an unexpected error is
   * logged and the lane starts over after a pause, so the demo keeps moving.
   */
  private async lane(name: string, run: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        await run();
        return;
      } catch (err) {
        if (this.signal.aborted) return;
        this.logger.warn({ lane: name, err: messageOf(err) }, 'demo: lane failed; restarting');
      }
      try {
        await this.sleep(LANE_RESTART_MS);
      } catch {
        return;
      }
    }
  }
}
