import type { Logger } from 'pino';
import type { Retention } from './options.js';
import type { Store } from './store/store.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Retention: every `sweepIntervalMs`, delete events and finished jobs older than
 * their retention, in small batches so writers never wait long.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly store: Store,
    private readonly retention: Retention,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), this.retention.sweepIntervalMs);
    // Retention must never keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sweep; concurrent calls share the one under way. */
  async sweep(): Promise<{ events: number; jobs: number }> {
    if (this.running) return this.running as Promise<{ events: number; jobs: number }>;
    const now = this.now();
    const run = this.store
      .sweep({
        eventsBefore: now - this.retention.eventsDays * DAY_MS,
        jobsBefore: now - this.retention.jobsDays * DAY_MS,
        batchSize: this.retention.batchSize,
      })
      .then(
        (result) => {
          if (result.events > 0 || result.jobs > 0) this.logger.info(result, 'retention sweep');
          return result;
        },
        (err: unknown) => {
          this.logger.warn({ err }, 'retention sweep failed');
          return { events: 0, jobs: 0 };
        },
      )
      .finally(() => {
        this.running = null;
      });
    this.running = run;
    return run;
  }
}
