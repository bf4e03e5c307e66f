import type {
  Control,
  CreateJobInput,
  EventInput,
  JobState,
  JobStatus,
  Json,
  JsonObject,
  LogLevel,
} from '@headway/protocol';
import { TERMINAL_STATUSES } from '@headway/protocol';
import { ErrorCode } from '@headway/protocol/codes';
import { HeadwayWorkerError, JobAbortedError, WorkerErrorCode } from './errors.js';
import type { Deferred, OutgoingEvent } from './event-sender.js';
import type { HeadwayWorkerOptions } from './options.js';
import {
  type FailOptions,
  failure,
  invalidValue,
  isSignificant,
  MAX_NAME,
  type ProgressData,
  type ProgressReport,
  progressData,
  sameProgress,
  truncate,
} from './report-data.js';

export type { FailOptions, ProgressReport } from './report-data.js';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Everything but `parent` of a job to create under this one; `owner` defaults to this job's. */
export type ChildInput = Omit<CreateJobInput, 'parent' | 'owner'> & { owner?: string };

export type ControlListener = (control: Control, handle: JobHandle) => void;

/** What a handle needs from its worker. @internal */
export interface HandleHost {
  readonly options: HeadwayWorkerOptions;
  readonly closed: boolean;
  nextKey(): string;
  enqueue(job: string, event: OutgoingEvent, deferred?: Deferred): boolean;
  dropJob(job: string, error: HeadwayWorkerError): void;
  createJob(input: CreateJobInput): Promise<JobHandle>;
  readState(job: string): Promise<JobState>;
  /** The handle ended: stop watching its control state. */
  release(handle: JobHandle): void;
  /** Keep the process alive while `checkpoint()` waits for a resume (+1 / -1). */
  hold(delta: 1 | -1): void;
}

/** How a job ended for this handle. */
type Ending = 'reported' | 'cancelled' | 'remote' | 'gone';

/**
 * One job as a worker sees it: report progress, stages, logs, metadata and the
 * outcome; learn of cancel and pause requests through `signal`, `checkpoint()`
 * and `onControl()`.
 *
 * Reports are queued and sent in the background: `progress`, `stage`, `log` and
 * `metadata` return at once; `complete`, `fail` and `cancelled` resolve when the
 * hub has stored the outcome. Progress is throttled per job (see
 * `progressIntervalMs` and `minPercentDelta`); the newest progress is always sent
 * before any other event of the job, so the last state before the end is never lost.
 *
 * Control is acknowledged for you: on a cancel request `signal` aborts,
 * `checkpoint()` rejects and `cancelled` is reported; on a pause request the next
 * `checkpoint()` reports `paused` and waits, and reports `resumed` when resumed.
 */
export class JobHandle {
  readonly id: string;
  private readonly host: HandleHost;
  private readonly abort = new AbortController();
  private current: JobState | null;
  private seq: number;
  private ctl: Control;
  private ending: Ending | null = null;
  private localPaused = false;
  private resumeSent = false;
  private readonly waiters = new Set<{ resolve: () => void; reject: (err: unknown) => void }>();
  private readonly listeners = new Set<ControlListener>();
  // Throttle state.
  private lastSent: ProgressData | null = null;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private pending: ProgressData | null = null;
  private pendingSignificant = false;
  private timer: NodeJS.Timeout | null = null;

  /** @internal Handles come from `worker.createJob()` and `worker.job()`. */
  constructor(host: HandleHost, id: string, state: JobState | null) {
    this.host = host;
    this.id = id;
    this.current = state;
    this.seq = state?.seq ?? 0;
    this.ctl = state ? { ...state.control } : { cancelRequested: false, paused: false };
  }

  /** Aborted when the job is cancelled (or deleted, or ended by someone else); the reason has a `code`. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The newest full state known (from creation, the control subscription or a poll); may lag behind `control`. */
  get state(): JobState | null {
    return this.current;
  }

  /** The job's control state as last learned from the hub. */
  get control(): Control {
    return { ...this.ctl };
  }

  /** @internal Seq of the newest state or answer seen. */
  get lastSeq(): number {
    return this.seq;
  }

  /** True once the job ended for this handle: reported an outcome, cancelled, deleted or ended elsewhere. */
  get ended(): boolean {
    return this.ending !== null;
  }

  // -------------------------------------------------------------------------
  // Reports

  /**
   * Report progress: `{percent}` (0–100; within the current stage when the job
   * has a stage plan), or `{current, total?, unit?}`. Throttled: sent at most
   * every `progressIntervalMs`, and only when the percent moved by
   * `minPercentDelta` or more, or the message, unit or total changed.
   * @throws TypeError with code `HW_ERR_INVALID_VALUE` for values out of range.
   */
  progress(report: ProgressReport, message?: string): void {
    const data = progressData(report, message);
    if (!this.usable()) return;
    this.pending = data;
    this.pendingSignificant = isSignificant(data, this.lastSent, this.host.options.minPercentDelta);
    if (!this.pendingSignificant) return;
    const wait = this.lastSentAt + this.host.options.progressIntervalMs - Date.now();
    if (wait <= 0) this.sendPending();
    else this.timer ??= setTimeout(() => this.sendPending(), wait);
  }

  /** Enter a stage (a name of the job's stage plan, or any name without a plan). Sent at once. */
  stage(name: string, message?: string): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME) {
      throw invalidValue(`stage name must be 1–${MAX_NAME} characters`);
    }
    if (!this.usable()) return;
    this.flushPending();
    this.send(
      message === undefined ? { kind: 'stage', name } : { kind: 'stage', name, message: truncate(message) },
    );
    // A new stage counts afresh: its first progress is always worth a report.
    this.lastSent = null;
  }

  /** Append a line to the job's log (longer than 4096 characters: truncated). Sent at once. */
  log(message: string, level: LogLevel = 'info'): void {
    if (typeof message !== 'string') throw invalidValue('log message must be a string');
    if (!LOG_LEVELS.includes(level)) throw invalidValue(`log level must be one of ${LOG_LEVELS.join(', ')}`);
    if (!this.usable()) return;
    this.flushPending();
    this.send({ kind: 'log', message: truncate(message), level });
  }

  /** Merge keys into the job's metadata (a key set to null is removed). Sent at once. */
  metadata(values: JsonObject): void {
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
      throw invalidValue('metadata must be a plain object');
    }
    if (!this.usable()) return;
    this.flushPending();
    this.send({ kind: 'metadata', metadata: values });
  }

  /**
   * The job succeeded. Resolves when the hub stored it, or at once when the job
   * had already ended (cancelled, say); rejects when it could not be delivered.
   */
  complete(result?: Json): Promise<void> {
    return this.finish(result === undefined ? { kind: 'completed' } : { kind: 'completed', result });
  }

  /**
   * The job failed. `error` is an Error, a message, or `{code?, message}`.
   * After a cancel (already acknowledged), resolves without reporting anything.
   */
  fail(error: unknown, options: FailOptions = {}): Promise<void> {
    return this.finish({ kind: 'failed', error: failure(error, options) });
  }

  /** The worker gave up on the job of its own accord (the user's cancel is acknowledged for you). */
  cancelled(reason?: string): Promise<void> {
    return this.finish(
      reason === undefined ? { kind: 'cancelled' } : { kind: 'cancelled', reason: truncate(reason, 1024) },
    );
  }

  /** Create a job under this one (a batch item); its owner defaults to this job's. */
  async child(input: ChildInput): Promise<JobHandle> {
    const owner = input.owner ?? this.current?.owner ?? (await this.host.readState(this.id)).owner;
    return this.host.createJob({ ...input, owner, parent: this.id });
  }

  // -------------------------------------------------------------------------
  // Control

  /**
   * Resolves at once while the job may run; while it is paused, reports `paused`
   * and waits for a resume (then reports `resumed`). Rejects with the reason of
   * `signal` (`name` "AbortError", `code` `HW_WORKER_CANCELLED`) once the job is cancelled.
   */
  checkpoint(): Promise<void> {
    if (this.abort.signal.aborted) return Promise.reject(this.abort.signal.reason);
    if (this.ending !== null || !this.ctl.paused) return Promise.resolve();
    if (!this.localPaused) {
      this.flushPending();
      this.localPaused = true;
      this.resumeSent = false;
      this.send({ kind: 'paused' });
    }
    this.host.hold(1);
    return new Promise<void>((resolve, reject) => {
      this.waiters.add({ resolve, reject });
    }).finally(() => this.host.hold(-1));
  }

  /** Called with the new control state whenever it changes; returns a function that removes the listener. */
  onControl(listener: ControlListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // -------------------------------------------------------------------------
  // From the worker

  /** @internal A full state from the control subscription, a poll or a read. */
  applyState(state: JobState): void {
    if (state.seq < this.seq) return;
    this.current = state;
    this.update(state.seq, state.control, state.status);
  }

  /** @internal The seq and control state from the answer to a report. */
  applyControl(seq: number, control: Control): void {
    if (seq < this.seq) return;
    this.update(seq, control, null);
  }

  /** @internal The hub refused the job's events for good: it ended elsewhere, was deleted, or does not exist. */
  refused(error: HeadwayWorkerError): void {
    if (this.ending !== null && this.ending !== 'reported') return;
    if (error.code === ErrorCode.JOB_FINISHED) {
      if (this.ending === 'reported') return;
      // Learn how it ended (a cancel while it was still queued ends it at once).
      this.host.readState(this.id).then(
        (state) => this.applyState(state),
        () => this.end('remote', ErrorCode.JOB_FINISHED, 'the job has ended'),
      );
      return;
    }
    this.gone(error.code, error.message);
  }

  /** @internal The job was deleted (or is not there): stop. */
  gone(code: string, message: string): void {
    if (this.ending !== null && this.ending !== 'reported') return;
    this.end('gone', code, message);
  }

  /** @internal Send the newest progress now (`flush()`, `close()`). */
  flushProgress(): void {
    if (this.ending === null) this.flushPending();
  }

  /** @internal The worker closes: stop the throttle timer, release waiters. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const err = new JobAbortedError(WorkerErrorCode.CLOSED, this.id, 'the worker closed');
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }

  // -------------------------------------------------------------------------

  private usable(): boolean {
    if (this.host.closed) {
      throw new HeadwayWorkerError(WorkerErrorCode.CLOSED, 'the worker is closed', { job: this.id });
    }
    return this.ending === null;
  }

  private send(event: EventInput, deferred?: Deferred): void {
    this.host.enqueue(this.id, { ...event, key: this.host.nextKey() } as OutgoingEvent, deferred);
  }

  private sendPending(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending || !this.pendingSignificant || this.ending !== null) return;
    this.emit(this.pending);
  }

  /** Send the newest progress now if it was not sent, whatever its size: another event follows. */
  private flushPending(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending && !sameProgress(this.pending, this.lastSent)) this.emit(this.pending);
    this.pending = null;
  }

  private emit(data: ProgressData): void {
    this.send({ kind: 'progress', ...data });
    this.lastSent = data;
    this.lastSentAt = Date.now();
    this.pending = null;
  }

  private finish(event: EventInput): Promise<void> {
    if (this.host.closed) {
      return Promise.reject(
        new HeadwayWorkerError(WorkerErrorCode.CLOSED, 'the worker is closed', { job: this.id }),
      );
    }
    if (this.ending !== null) return Promise.resolve();
    this.flushPending();
    this.ending = 'reported';
    const done = new Promise<void>((resolve, reject) => {
      this.send(event, {
        resolve,
        reject: (err) => (err.code === ErrorCode.JOB_FINISHED ? resolve() : reject(err)),
      });
    });
    this.settleWaiters(null);
    this.host.release(this);
    return done;
  }

  private update(seq: number, control: Control, status: JobStatus | null): void {
    this.seq = seq;
    const changed =
      control.cancelRequested !== this.ctl.cancelRequested || control.paused !== this.ctl.paused;
    this.ctl = { ...control };
    if (this.ending === null) {
      if (status !== null && TERMINAL_STATUSES.includes(status)) {
        if (status === 'cancelled') this.end('remote', WorkerErrorCode.CANCELLED, 'the job was cancelled');
        else this.end('remote', ErrorCode.JOB_FINISHED, `the job was ${status} elsewhere`);
      } else if (control.cancelRequested) {
        this.acknowledgeCancel();
      } else if (!control.paused && this.localPaused && !this.resumeSent) {
        this.resumeSent = true;
        this.localPaused = false;
        this.send({ kind: 'resumed' });
        this.settleWaiters(null);
      } else if (!control.paused && status === 'paused' && !this.localPaused && !this.resumeSent) {
        // Paused by an earlier worker and resumed while none was there: finish the resume.
        this.resumeSent = true;
        this.send({ kind: 'resumed' });
      }
    }
    if (changed) {
      for (const listener of [...this.listeners]) {
        try {
          listener(this.control, this);
        } catch {
          // A listener's failure is its own; the others still run.
        }
      }
    }
  }

  private acknowledgeCancel(): void {
    this.flushPending();
    this.send({ kind: 'cancelled' });
    this.end('cancelled', WorkerErrorCode.CANCELLED, 'the job was cancelled');
  }

  private end(ending: Ending, code: string, message: string): void {
    this.ending = ending;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
    const reason = new JobAbortedError(code as WorkerErrorCode, this.id, message);
    if (ending !== 'cancelled') {
      this.host.dropJob(this.id, new JobAbortedError(code as WorkerErrorCode, this.id, message));
    }
    this.abort.abort(reason);
    this.settleWaiters(reason);
    this.host.release(this);
  }

  private settleWaiters(error: unknown): void {
    for (const w of this.waiters) {
      if (error === null) w.resolve();
      else w.reject(error);
    }
    this.waiters.clear();
  }
}
