import { randomBytes, randomUUID } from 'node:crypto';
import type { CreateJobInput, JobState } from '@headway/protocol';
import { ErrorCode, JOB_ID, TERMINAL_STATUSES } from '@headway/protocol/codes';
import { ControlChannel } from './control-channel.js';
import { HeadwayWorkerError, WorkerErrorCode } from './errors.js';
import { type Deferred, EventSender, type OutgoingEvent } from './event-sender.js';
import { HubClient, hubError } from './hub-client.js';
import { type HandleHost, JobHandle } from './job-handle.js';
import {
  type HeadwayWorkerOptions,
  type HeadwayWorkerOptionsInput,
  resolveWorkerOptions,
} from './options.js';

export interface CreateJobOptions {
  /**
   * Watch the job's control state at once (default true). A job that waits in a
   * queue has no worker to tell yet (the hub cancels a queued job by itself);
   * `worker.job(id)` starts watching it when work begins.
   */
  watch?: boolean;
}

/**
 * A worker's connection to a Headway hub: creates jobs, reports their events,
 * and learns of cancel and pause requests. One per process is enough; it is
 * shared by all the jobs the process runs.
 *
 * ```ts
 * const worker = new HeadwayWorker(); // HEADWAY_URL, HEADWAY_API_KEY
 * const job = await worker.createJob({ owner: 'alice', name: 'Transcode intro.mp4' });
 * for (let i = 1; i <= 100; i++) {
 *   await job.checkpoint();           // waits while paused, throws once cancelled
 *   await work(i, job.signal);
 *   job.progress({ current: i, total: 100, unit: 'chunks' });
 * }
 * await job.complete({ url: 'https://…' });
 * await worker.close();
 * ```
 */
export class HeadwayWorker {
  readonly options: HeadwayWorkerOptions;
  private readonly client: HubClient;
  private readonly sender: EventSender;
  private readonly control: ControlChannel;
  private readonly handles = new Map<string, JobHandle>();
  private readonly closing = new AbortController();
  /** Prefix of this worker's idempotency keys: unique per worker instance. */
  private readonly keyPrefix = randomBytes(9).toString('base64url');
  private keyCounter = 0;
  private holds = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  private closePromise: Promise<void> | null = null;
  private readonly host: HandleHost;

  /**
   * @throws TypeError (code `HW_WORKER_INVALID_OPTION`) naming the missing or
   * invalid setting, e.g. when neither `url` nor `HEADWAY_URL` is set.
   */
  constructor(options: HeadwayWorkerOptionsInput = {}) {
    this.options = resolveWorkerOptions(options);
    this.client = new HubClient(this.options, this.closing.signal);
    this.sender = new EventSender(this.options, this.client, {
      accepted: (job, seq, control) => {
        this.handles.get(job)?.applyControl(seq, control);
        this.control.reported(job);
      },
      ended: (job, error) => this.handles.get(job)?.refused(error),
    });
    this.control = new ControlChannel(this.options, this.client, {
      applyState: (state) => this.handles.get(state.id)?.applyState(state),
      gone: (job, code, message) => this.handles.get(job)?.gone(code, message),
      seqOf: (job) => this.handles.get(job)?.lastSeq ?? 0,
    });
    const worker = this;
    this.host = {
      options: this.options,
      get closed() {
        return worker.closePromise !== null;
      },
      nextKey: () => `${this.keyPrefix}-${(++this.keyCounter).toString(36)}`,
      enqueue: (job: string, event: OutgoingEvent, deferred?: Deferred) =>
        this.sender.enqueue(job, event, deferred),
      dropJob: (job: string, error: HeadwayWorkerError) => this.sender.dropJob(job, error),
      createJob: (input: CreateJobInput) => this.createJob(input),
      readState: (job: string) => this.readState(job),
      release: (handle: JobHandle) => this.release(handle),
      hold: (delta: 1 | -1) => this.hold(delta),
    };
  }

  /**
   * Create a job and start watching its control state. The id is generated when
   * absent. A request retried after a lost answer cannot create the job twice: when
   * the hub says the id exists, the job is read back and adopted if its owner,
   * parent and name are those asked for.
   * @throws HeadwayWorkerError with the hub's code (`HW_ERR_JOB_EXISTS`,
   * `HW_ERR_INVALID_MESSAGE` …) or `HW_WORKER_UNREACHABLE` after every retry.
   */
  async createJob(input: CreateJobInput, options: CreateJobOptions = {}): Promise<JobHandle> {
    this.assertOpen();
    if (typeof input !== 'object' || input === null) throw invalid('createJob takes an object');
    if (typeof input.owner !== 'string' || input.owner.length === 0) {
      throw invalid('createJob: "owner" (the user who may watch the job) is required');
    }
    const id = input.id ?? randomUUID();
    checkJobId(id);
    if (input.parent !== undefined) checkJobId(input.parent);
    const body = { ...input, id };
    let exists = false;
    const response = await this.client.call('POST', '/v1/jobs', body, (refused, retried) => {
      // After an attempt without an answer, "exists" may mean that attempt was stored.
      if (retried && hubError(refused).code === ErrorCode.JOB_EXISTS) {
        exists = true;
        return refused;
      }
      return null;
    });
    let state = response.body as JobState;
    if (exists) {
      state = await this.readState(id);
      const ours =
        state.owner === input.owner &&
        state.parent === (input.parent ?? null) &&
        (input.name === undefined || state.name === input.name);
      if (!ours) throw hubError(response);
    }
    return this.adopt(id, state, options.watch ?? true);
  }

  /**
   * The handle of an existing job (created by a back end, say), to report for it
   * and watch its control state. The same handle is returned while the job is open.
   */
  job(id: string, options: CreateJobOptions = {}): JobHandle {
    this.assertOpen();
    checkJobId(id);
    return this.adopt(id, null, options.watch ?? true);
  }

  /**
   * Like `job(id)`, but reads the job first, so that a missing or deleted job is
   * an error now rather than on the first report.
   * @throws HeadwayWorkerError `HW_ERR_NOT_FOUND` or `HW_ERR_JOB_DELETED`.
   */
  async open(id: string, options: CreateJobOptions = {}): Promise<JobHandle> {
    this.assertOpen();
    checkJobId(id);
    const state = await this.readState(id);
    return this.adopt(id, state, options.watch ?? true);
  }

  /** Send the newest progress of every job now, and resolve when every queued event is delivered. */
  async flush(): Promise<void> {
    for (const handle of this.handles.values()) handle.flushProgress();
    await this.sender.idle();
  }

  /**
   * Deliver what is queued (for up to `closeTimeoutMs`), then stop: close the
   * control socket (resolving once it has closed) and every timer. Events still undelivered are dropped and
   * reported to `onError` with `HW_WORKER_DROPPED`. Jobs left open stay as they
   * are in the hub. Idempotent.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      for (const handle of this.handles.values()) handle.flushProgress();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeTimeoutMs);
      });
      try {
        await Promise.race([this.sender.idle(), deadline]);
      } finally {
        clearTimeout(timer);
      }
      const dropped = this.sender.stop();
      this.closing.abort();
      const socketClosed = this.control.close();
      for (const handle of this.handles.values()) handle.dispose();
      this.handles.clear();
      if (this.holdTimer) clearInterval(this.holdTimer);
      this.holdTimer = null;
      if (dropped > 0) {
        this.options.onError(
          new HeadwayWorkerError(
            WorkerErrorCode.DROPPED,
            `closed with ${dropped} events undelivered after ${this.options.closeTimeoutMs} ms`,
          ),
        );
      }
      await socketClosed;
    })();
    return this.closePromise;
  }

  /** Events queued, in flight, delivered and dropped; jobs open. */
  stats(): { queued: number; inFlight: number; sent: number; dropped: number; openJobs: number } {
    return { ...this.sender.stats(), openJobs: this.handles.size };
  }

  // -------------------------------------------------------------------------

  private adopt(id: string, state: JobState | null, watch: boolean): JobHandle {
    let handle = this.handles.get(id);
    if (handle) {
      if (state) handle.applyState(state);
      if (watch && !handle.ended) this.control.watch(id);
      return handle;
    }
    handle = new JobHandle(this.host, id, state);
    if (state && isTerminal(state)) {
      // Nothing to watch; the handle reports the ending to its user.
      handle.applyState(state);
      return handle;
    }
    this.handles.set(id, handle);
    if (watch) this.control.watch(id);
    return handle;
  }

  private release(handle: JobHandle): void {
    if (this.handles.get(handle.id) !== handle) return;
    this.handles.delete(handle.id);
    this.control.unwatch(handle.id);
  }

  private async readState(job: string): Promise<JobState> {
    const response = await this.client.call('GET', `/v1/jobs/${encodeURIComponent(job)}`);
    return response.body as JobState;
  }

  /**
   * A promise that waits for a resume has no handle keeping the process alive;
   * this timer does, while any `checkpoint()` waits.
   */
  private hold(delta: 1 | -1): void {
    this.holds += delta;
    if (this.holds > 0 && !this.holdTimer && this.closePromise === null) {
      this.holdTimer = setInterval(() => {}, 60_000);
    } else if (this.holds <= 0 && this.holdTimer) {
      clearInterval(this.holdTimer);
      this.holdTimer = null;
    }
  }

  private assertOpen(): void {
    if (this.closePromise !== null) {
      throw new HeadwayWorkerError(WorkerErrorCode.CLOSED, 'the worker is closed');
    }
  }
}

function isTerminal(state: JobState): boolean {
  return TERMINAL_STATUSES.includes(state.status);
}

function invalid(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: ErrorCode.INVALID_MESSAGE });
}

function checkJobId(id: unknown): void {
  if (typeof id !== 'string' || !JOB_ID.test(id)) {
    throw invalid(`job ids are 1–128 letters, digits and "._:-"; got ${JSON.stringify(id)}`);
  }
}
