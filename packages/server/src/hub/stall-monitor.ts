import type { JobState } from '@headway/protocol';
import { BoundedMap } from '../bounded-map.js';
import { type StallOptions, stallDeadline } from '../state/index.js';
import type { KindHistory } from './kind-history.js';

/** Running jobs watched for stalls per process. */
const WATCHED_JOBS = 100_000;

/** What the stall monitor needs of the hub. */
export interface StallMonitorContext {
  history: Pick<KindHistory, 'peek'>;
  options: StallOptions;
  now(): number;
  /** Append a `stalled` event if the job (as it is now) is still stalled at `now`. */
  markStalled(jobId: string, now: number): Promise<unknown>;
  onError(err: unknown): void;
}

/**
 * Finds running jobs that went quiet. Every job this process commits a write for
 * is noted with the time it will count as stalled; one timer sweeps the
 * deadlines every `checkMs` (no timer per job), and each job past its deadline is
 * checked again on its current state before `stalled` is appended, so a report
 * that raced the sweep, or one taken by another process, wins.
 */
export class StallMonitor {
  private readonly deadlines = new BoundedMap<string, number>(WATCHED_JOBS);
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: StallMonitorContext) {}

  /** A write of the job was committed: watch it (running) or stop (anything else). */
  note(state: JobState): void {
    const deadline = stallDeadline(state, this.ctx.history.peek(state.kind), this.ctx.options);
    if (deadline === null) this.deadlines.delete(state.id);
    else this.deadlines.set(state.id, deadline);
  }

  /** Look for stalled jobs now; resolves with the number of jobs marked stalled. */
  async check(): Promise<number> {
    const now = this.ctx.now();
    const due: string[] = [];
    for (const [id, deadline] of this.deadlines) if (deadline <= now) due.push(id);
    for (const id of due) this.deadlines.delete(id);
    const marked = await Promise.all(
      due.map((id) =>
        this.ctx.markStalled(id, now).then(
          (event) => event !== null,
          (err) => {
            this.ctx.onError(err);
            return false;
          },
        ),
      ),
    );
    return marked.filter(Boolean).length;
  }

  start(): void {
    if (this.timer !== null || !(this.ctx.options.checkMs > 0)) return;
    this.timer = setInterval(() => void this.check(), this.ctx.options.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  get size(): number {
    return this.deadlines.size;
  }
}
