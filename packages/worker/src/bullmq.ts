/**
 * @headway/worker/bullmq: mirror a BullMQ queue's jobs into Headway, and carry
 * Headway cancel requests to the BullMQ processors.
 */
import { createHash } from 'node:crypto';
import type { Json, JsonObject, StageInput } from '@headway/protocol';
import { ErrorCode, JOB_ID_CHARACTERS, JOB_ID_MAX_LENGTH } from '@headway/protocol/codes';
import { Job, type Queue, QueueEvents, UnrecoverableError, type Worker } from 'bullmq';
import { WorkerErrorCode } from './errors.js';
import type { JobHandle, ProgressReport } from './job-handle.js';
import type { HeadwayWorkerOptionsInput } from './options.js';
import { HeadwayWorker } from './worker.js';

// biome-ignore lint/suspicious/noExplicitAny: BullMQ's own default for job data and results.
type AnyJob = Job<any, any, string>;

export interface BridgeBullMQOptions {
  /** The queue to mirror. Its connection and prefix are used for the event stream. */
  queue: Queue;
  /** The Headway worker to report through, or the options of one for the bridge to own. */
  hub: HeadwayWorker | HeadwayWorkerOptionsInput;
  /** The Headway user who may watch and control the job (required: jobs always have an owner). */
  owner: (job: AnyJob) => string | Promise<string>;
  /** The job's name in Headway. Default: the BullMQ job's name. */
  name?: (job: AnyJob) => string;
  /** The job's stage plan in Headway. Default: none. */
  stages?: (job: AnyJob) => StageInput[] | undefined;
  /** Extra metadata of the Headway job (the bridge adds a `bullmq` key). */
  metadata?: (job: AnyJob) => JsonObject;
  /** Headway id of the first attempt. Default: `bullmq:<queue>:<job id>` (see `bullmqJobId`). */
  jobId?: (job: AnyJob) => string;
  /**
   * A BullMQ worker of this process: a Headway cancel then aborts the signal
   * BullMQ passes to its processor (`worker.cancelJob`). See also `withHeadway`.
   */
  worker?: Worker;
  /** Event stream id to start after. Default: the stream's newest event when the bridge starts. */
  lastEventId?: string;
  /** Largest result copied from `returnvalue`, serialized bytes; a larger one is left out. Default 16 KiB. */
  maxResultBytes?: number;
  /** Errors of the bridge (an owner function that threw, a refused report). Default: the worker's `onError`. */
  onError?: (err: unknown) => void;
}

/** A processor given to `withHeadway`: its signal is always there. */
export type SignalProcessor<R = unknown> = (
  job: AnyJob,
  token: string | undefined,
  signal: AbortSignal,
) => Promise<R>;

/** A BullMQ processor that takes BullMQ's signal as its third argument. */
export type BullMQProcessor<R = unknown> = (job: AnyJob, token?: string, signal?: AbortSignal) => Promise<R>;

export interface BullMQBridge {
  /** The Headway worker the bridge reports through. */
  readonly headway: HeadwayWorker;
  /** The Headway handle of the job's current attempt (for extra reports, stages, logs). */
  handleFor(job: AnyJob): JobHandle;
  /** Aborted when the job's current attempt is cancelled in Headway. */
  signalFor(job: AnyJob): AbortSignal;
  /**
   * Wrap a processor: it gets a signal that aborts on a Headway cancel (and on
   * BullMQ's own cancel), and a job cancelled in Headway fails with BullMQ's
   * `UnrecoverableError`, so that BullMQ does not retry it.
   */
  withHeadway<R>(processor: SignalProcessor<R>): BullMQProcessor<R>;
  /** Stop mirroring; closes the Headway worker when the bridge created it. */
  close(): Promise<void>;
}

/** Code of the error of an attempt that BullMQ will retry. */
export const ATTEMPT_FAILED = 'BULLMQ_ATTEMPT_FAILED';
/** Code of the error of a job that BullMQ gave up on. */
export const JOB_FAILED = 'BULLMQ_FAILED';

const MAX_ID = JOB_ID_MAX_LENGTH;

/**
 * The Headway id of a BullMQ job's attempt: `bullmq:<queue>:<job id>` for the
 * first, with `:attempt-<n>` for the later ones. Characters Headway ids do not
 * allow become `_`; an id too long is shortened with a hash.
 */
export function bullmqJobId(queueName: string, jobId: string, attempt = 1): string {
  const base = clean(`bullmq:${queueName}:${jobId}`);
  return attempt <= 1 ? base : `${base.slice(0, MAX_ID - 20)}:attempt-${attempt}`;
}

function clean(id: string): string {
  const safe = id.replace(new RegExp(`[^${JOB_ID_CHARACTERS}]`, 'g'), '_');
  if (safe.length <= MAX_ID - 20) return safe;
  const hash = createHash('sha256').update(id).digest('base64url').slice(0, 10).replace(/[-_]/g, '0');
  return `${safe.slice(0, MAX_ID - 32)}.${hash}`;
}

/**
 * What a BullMQ progress value means in Headway: a number is a percent; an
 * object may carry `percent`, `current`, `total`, `unit`, `message` and `stage`.
 * Anything else is not progress (null).
 */
export function progressFromBullMQ(
  data: unknown,
): { report: ProgressReport | null; message?: string; stage?: string } | null {
  if (typeof data === 'number') {
    return Number.isFinite(data) ? { report: { percent: Math.min(100, Math.max(0, data)) } } : null;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const d = data as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const percent = num(d.percent);
  const current = num(d.current);
  const total = num(d.total);
  const out: { report: ProgressReport | null; message?: string; stage?: string } = { report: null };
  if (percent !== undefined) out.report = { percent: Math.min(100, percent) };
  if (current !== undefined) {
    out.report = { ...(out.report ?? {}), current } as ProgressReport;
    if (total !== undefined && total >= current) out.report.total = total;
  }
  if (out.report && typeof d.unit === 'string' && d.unit.length > 0) out.report.unit = d.unit.slice(0, 32);
  if (typeof d.message === 'string') out.message = d.message;
  if (typeof d.stage === 'string' && d.stage.length > 0) out.stage = d.stage;
  return out.report || out.stage ? out : null;
}

interface Tracked {
  /** Attempt number of `handle`. */
  attempt: number;
  handle: JobHandle | null;
  /** The attempt is running in BullMQ. */
  active: boolean;
  /** Events of this job are handled one after another. */
  chain: Promise<void>;
  /** The owner function failed: the job is not mirrored. */
  skipped: boolean;
}

/**
 * Mirror a BullMQ queue's jobs into Headway, from its event stream
 * (`QueueEvents`), whichever process runs the processors:
 *
 * - `added` creates the Headway job (queued); `active` starts it;
 * - `progress` (`job.updateProgress`) with a number (percent) or an object
 *   (`{percent | current, total?, unit?, message?, stage?}`) reports progress;
 * - `completed` completes it with `returnvalue` as the result;
 * - an attempt that fails while attempts remain ends its Headway job `failed`
 *   with `retryable: true` and code `BULLMQ_ATTEMPT_FAILED`, and the retry is a
 *   new Headway job (`<id>:attempt-<n>`, metadata `retryOf` and `attempt`);
 * - the final failure is `failed` with `retryable: false` and code `BULLMQ_FAILED`;
 * - a job removed from the queue is `cancelled`.
 *
 * A Headway cancel aborts `signalFor(job)`, the signal `withHeadway` gives its
 * processor, and (with `worker`) the signal BullMQ gives its processor.
 */
export async function bridgeBullMQ(options: BridgeBullMQOptions): Promise<BullMQBridge> {
  const { queue } = options;
  if (typeof options.owner !== 'function') {
    throw Object.assign(new TypeError('bridgeBullMQ: "owner" must be a function of the job'), {
      code: WorkerErrorCode.INVALID_OPTION,
      option: 'owner',
    });
  }
  const ownsWorker = !(options.hub instanceof HeadwayWorker);
  const headway = options.hub instanceof HeadwayWorker ? options.hub : new HeadwayWorker(options.hub);
  const onError = options.onError ?? ((err: unknown) => headway.options.onError(err as never));
  const maxResultBytes = options.maxResultBytes ?? 16 * 1024;
  const baseId = (job: AnyJob) =>
    options.jobId ? options.jobId(job) : bullmqJobId(queue.name, String(job.id));
  const attemptId = (job: AnyJob, attempt: number) =>
    attempt <= 1 ? baseId(job) : `${baseId(job).slice(0, MAX_ID - 20)}:attempt-${attempt}`;

  const tracked = new Map<string, Tracked>();
  let closing = false;

  const lastEventId = options.lastEventId ?? (await streamEnd(queue));
  const events = new QueueEvents(queue.name, {
    connection: queue.opts.connection,
    prefix: queue.opts.prefix,
    lastEventId,
  });
  events.on('error', (err) => {
    if (!closing) onError(err);
  });
  await events.waitUntilReady();

  /** Run `task` after the job's earlier events. */
  function handle(jobId: string, task: (t: Tracked) => Promise<void>, last = false): void {
    let t = tracked.get(jobId);
    if (!t) {
      t = { attempt: 0, handle: null, active: false, chain: Promise.resolve(), skipped: false };
      tracked.set(jobId, t);
    }
    const entry = t;
    entry.chain = entry.chain
      .then(() => (entry.skipped ? undefined : task(entry)))
      .catch((err: unknown) => {
        if (!closing) onError(err);
      })
      .finally(() => {
        if (last && tracked.get(jobId) === entry) tracked.delete(jobId);
      });
  }

  async function load(jobId: string): Promise<AnyJob | undefined> {
    return (await Job.fromId(queue, jobId)) as AnyJob | undefined;
  }

  function bullmqMeta(job: AnyJob, attempt: number): JsonObject {
    return {
      queue: queue.name,
      id: String(job.id),
      name: job.name,
      attempt,
      attempts: job.opts.attempts ?? 1,
    };
  }

  /** The Headway job of `attempt`, created (queued) when it does not exist yet. */
  async function ensureAttempt(t: Tracked, job: AnyJob, attempt: number, watch: boolean): Promise<JobHandle> {
    if (t.handle && t.attempt === attempt) {
      if (watch) headway.job(t.handle.id);
      return t.handle;
    }
    let owner: string;
    try {
      owner = await options.owner(job);
    } catch (err) {
      t.skipped = true;
      throw err;
    }
    const id = attemptId(job, attempt);
    const metadata: JsonObject = { ...(options.metadata?.(job) ?? {}), bullmq: bullmqMeta(job, attempt) };
    if (attempt > 1) {
      metadata.retryOf = attemptId(job, attempt - 1);
      metadata.attempt = attempt;
    }
    let h: JobHandle;
    try {
      h = await headway.createJob(
        {
          id,
          owner,
          name: options.name?.(job) ?? job.name,
          stages: options.stages?.(job),
          metadata,
        },
        { watch },
      );
    } catch (err) {
      if ((err as { code?: unknown }).code !== ErrorCode.JOB_EXISTS) throw err;
      // Created before (a restarted bridge, or an earlier event of this attempt).
      h = headway.job(id, { watch });
    }
    t.handle = h;
    t.attempt = attempt;
    if (options.worker) {
      const worker = options.worker;
      const bullId = String(job.id);
      h.signal.addEventListener(
        'abort',
        () => {
          if ((h.signal.reason as { code?: unknown })?.code === WorkerErrorCode.CANCELLED) {
            worker.cancelJob(bullId, 'cancelled in Headway');
          }
        },
        { once: true },
      );
    }
    return h;
  }

  events.on('added', ({ jobId }) =>
    handle(jobId, async (t) => {
      const job = await load(jobId);
      if (job) await ensureAttempt(t, job, 1, false);
    }),
  );

  events.on('active', ({ jobId }) =>
    handle(jobId, async (t) => {
      const job = await load(jobId);
      if (!job) return;
      // The attempt follows from the events seen: by the time the job is read, this
      // attempt may have ended already. A job first seen now is taken as it is.
      const attempt = t.attempt > 0 ? t.attempt : job.attemptsMade + 1;
      const h = await ensureAttempt(t, job, attempt, true);
      t.active = true;
      // The first report moves the Headway job from queued to running.
      h.metadata({ bullmq: bullmqMeta(job, attempt) });
    }),
  );

  events.on('progress', ({ jobId, data }) =>
    handle(jobId, async (t) => {
      let h = t.handle;
      if (!h) {
        const job = await load(jobId);
        if (!job) return;
        h = await ensureAttempt(t, job, job.attemptsMade + 1, true);
      }
      const mapped = progressFromBullMQ(data);
      if (!mapped || h.ended) return;
      if (mapped.stage !== undefined) h.stage(mapped.stage);
      if (mapped.report) h.progress(mapped.report, mapped.message);
    }),
  );

  events.on('completed', ({ jobId, returnvalue }) =>
    handle(
      jobId,
      async (t) => {
        let h = t.handle;
        if (!h) {
          const job = await load(jobId);
          if (!job) return;
          h = await ensureAttempt(t, job, Math.max(1, job.attemptsMade), false);
        }
        await h.complete(resultOf(returnvalue, maxResultBytes));
      },
      true,
    ),
  );

  events.on('failed', ({ jobId, failedReason }) =>
    handle(
      jobId,
      async (t) => {
        const job = await load(jobId);
        let h = t.handle;
        if (!h) {
          if (!job) return;
          h = await ensureAttempt(t, job, Math.max(1, job.attemptsMade), false);
        }
        if (job && !h.ended)
          h.metadata({ bullmq: { ...bullmqMeta(job, t.attempt), attemptsMade: job.attemptsMade } });
        await h.fail({ code: JOB_FAILED, message: failedReason || 'failed' }, { retryable: false });
      },
      true,
    ),
  );

  // A failed attempt that BullMQ retries is not a `failed` event: the job goes
  // back to waiting (or delayed, with backoff) with one more attempt made.
  const retried = ({ jobId }: { jobId: string }) =>
    handle(jobId, async (t) => {
      if (!t.active || !t.handle) return;
      const job = await load(jobId);
      if (!job) return;
      t.active = false;
      if (job.attemptsMade < t.attempt) return; // moved back without an attempt made (rate limit)
      const h = t.handle;
      if (!h.ended) {
        h.metadata({ bullmq: { ...bullmqMeta(job, t.attempt), attemptsMade: t.attempt } });
        await h.fail(
          { code: ATTEMPT_FAILED, message: job.failedReason || 'attempt failed' },
          { retryable: true },
        );
      }
      await ensureAttempt(t, job, t.attempt + 1, false);
    });
  events.on('waiting', ({ jobId, prev }) => {
    if (prev === 'active') retried({ jobId });
  });
  events.on('delayed', ({ jobId }) => retried({ jobId }));

  events.on('removed', ({ jobId }) =>
    handle(
      jobId,
      async (t) => {
        if (t.handle && !t.handle.ended) await t.handle.cancelled('removed from the queue');
      },
      true,
    ),
  );

  const bridge: BullMQBridge = {
    headway,
    handleFor(job) {
      return headway.job(attemptId(job, job.attemptsMade + 1));
    },
    signalFor(job) {
      return bridge.handleFor(job).signal;
    },
    withHeadway<R>(processor: SignalProcessor<R>): BullMQProcessor<R> {
      // Three declared parameters: BullMQ passes its own signal only to processors that take one.
      return async function processWithHeadway(job: AnyJob, token?: string, signal?: AbortSignal) {
        const cancelled = bridge.signalFor(job);
        const combined = signal ? AbortSignal.any([signal, cancelled]) : cancelled;
        try {
          return await processor(job, token, combined);
        } catch (err) {
          if (cancelled.aborted) {
            const code =
              (cancelled.reason as { code?: string } | undefined)?.code ?? WorkerErrorCode.CANCELLED;
            throw new UnrecoverableError(`cancelled in Headway (${code})`);
          }
          throw err;
        }
      };
    },
    async close() {
      if (closing) return;
      closing = true;
      await events.close();
      await Promise.all([...tracked.values()].map((t) => t.chain));
      if (ownsWorker) await headway.close();
      else await headway.flush();
    },
  };
  return bridge;
}

/** The newest id of the queue's event stream, so that the bridge starts exactly there. */
async function streamEnd(queue: Queue): Promise<string> {
  const client = (await queue.client) as unknown as {
    xrevrange?: (
      key: string,
      end: string,
      start: string,
      count: 'COUNT',
      n: number,
    ) => Promise<[string, string[]][]>;
  };
  if (typeof client.xrevrange !== 'function') return '$';
  const last = await client.xrevrange(queue.keys.events!, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

function resultOf(value: unknown, maxBytes: number): Json | undefined {
  if (value === undefined || value === null) return undefined;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return undefined;
  }
  if (text === undefined || Buffer.byteLength(text) > maxBytes) return undefined;
  return JSON.parse(text) as Json;
}
