import { backoffDelay, type Control, type EventInput, TERMINAL_STATUSES } from '@headway/protocol';
import { ErrorCode } from '@headway/protocol/codes';
import { HeadwayWorkerError, WorkerErrorCode } from './errors.js';
import { type HubClient, hubError, isRetryableStatus, notifyRetry, sleep } from './hub-client.js';
import type { HeadwayWorkerOptions } from './options.js';

/** An event as it goes on the wire: every one carries an idempotency key. */
export type OutgoingEvent = EventInput & { key: string };

export interface Deferred {
  resolve(): void;
  reject(err: HeadwayWorkerError): void;
}

interface Item {
  job: string;
  event: OutgoingEvent;
  /** Serialized size, for the per-request byte limit. */
  bytes: number;
  /** Send in a request of its own: a request holding it was refused as a whole. */
  alone: boolean;
  deferred: Deferred | undefined;
}

/** What the sender tells the worker about each job's fate. */
export interface SenderHooks {
  /** The job's events were stored; `control` is the job's control state after them. */
  accepted(job: string, seq: number, control: Control): void;
  /** The hub refused every event of the job for good: it ended, was deleted, or does not exist. */
  ended(job: string, error: HeadwayWorkerError): void;
}

/** Per-job errors worth retrying: the hub could not take the write right now. */
const RETRYABLE_CODES = new Set<string>([
  ErrorCode.STORE_UNAVAILABLE,
  ErrorCode.SHUTTING_DOWN,
  ErrorCode.INTERNAL,
  ErrorCode.RATE_LIMITED,
]);
/** Per-job errors that end the job for this worker. */
const ENDING_CODES = new Set<string>([ErrorCode.JOB_FINISHED, ErrorCode.JOB_DELETED, ErrorCode.NOT_FOUND]);
/** Kinds that are never dropped when the queue overflows. */
const KEPT_KINDS = new Set<string>([...TERMINAL_STATUSES, 'paused', 'resumed']);
/** Shortest time between two reports of dropped events, ms. */
const DROP_REPORT_INTERVAL_MS = 10_000; // 10 seconds

type PublishManyResult =
  | { job: string; seq: number; control: Control }
  | { job: string; error: { code: string; message: string } };

/**
 * The queue of outgoing events of every job of a worker, sent in batches with
 * `POST /v1/events` over the runtime's keep-alive connections.
 *
 * - One request at a time, so that a job's events reach the hub in order; what
 *   is queued meanwhile goes out together in the next request.
 * - A request without an answer, or answered 429 or 5xx, is sent again after a
 *   capped exponential backoff with jitter (never sooner than `Retry-After`).
 *   Events keep their idempotency keys across attempts, so a request that was
 *   committed before its answer was lost is applied once.
 * - Queued progress of a job collapses into its newest report; past
 *   `maxQueuedEvents`, the oldest queued progress and log events are dropped.
 *   Terminal events and control acknowledgements are never dropped.
 */
export class EventSender {
  private queue: Item[] = [];
  /** The newest queued item of each job, for collapsing progress. */
  private readonly newest = new Map<string, Item>();
  private inFlight: Item[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private failures = 0;
  private stopped = false;
  private readonly stopping = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private dropped = 0;
  private lastDropReport = Number.NEGATIVE_INFINITY;
  private sentEvents = 0;
  /** Why the last request is sent again, for `onRetry`. */
  private retryCause: HeadwayWorkerError | undefined;

  constructor(
    private readonly options: HeadwayWorkerOptions,
    private readonly client: HubClient,
    private readonly hooks: SenderHooks,
  ) {}

  /** Events waiting, in flight, sent, and dropped so far. */
  stats(): { queued: number; inFlight: number; sent: number; dropped: number } {
    return {
      queued: this.queue.length,
      inFlight: this.inFlight.length,
      sent: this.sentEvents,
      dropped: this.dropped,
    };
  }

  /** Queue one event. Returns false when it was dropped (queue full, or the sender stopped). */
  enqueue(job: string, event: OutgoingEvent, deferred?: Deferred): boolean {
    if (this.stopped) {
      deferred?.reject(new HeadwayWorkerError(WorkerErrorCode.CLOSED, 'the worker is closed', { job }));
      return false;
    }
    const bytes = Buffer.byteLength(JSON.stringify(event)) + job.length + 10;
    const last = this.newest.get(job);
    if (event.kind === 'progress' && last && last.event.kind === 'progress' && !last.deferred) {
      // Only the newest progress of a job matters. The replaced event may have been
      // sent before (and requeued): it takes the new key, so the hub cannot skip it.
      last.event = event;
      last.bytes = bytes;
      return true;
    }
    if (this.queue.length >= this.options.maxQueuedEvents && !KEPT_KINDS.has(event.kind)) {
      // Make room by dropping the oldest progress or log event: a later report
      // supersedes a progress event, and a log line is the least of a job's record.
      const victim = this.queue.findIndex((i) => i.event.kind === 'progress' || i.event.kind === 'log');
      this.noteDropped(1);
      if (victim === -1) {
        deferred?.reject(new HeadwayWorkerError(WorkerErrorCode.DROPPED, 'the event queue is full', { job }));
        return false;
      }
      this.removeAt(victim);
    }
    const item: Item = { job, event, bytes, alone: false, deferred };
    this.queue.push(item);
    this.newest.set(job, item);
    this.schedule();
    return true;
  }

  /** Drop the queued events of a job (its end is known); their waiters get `error`. */
  dropJob(job: string, error: HeadwayWorkerError): void {
    const kept: Item[] = [];
    for (const item of this.queue) {
      if (item.job === job) item.deferred?.reject(error);
      else kept.push(item);
    }
    this.queue = kept;
    this.newest.delete(job);
    this.notifyIdle();
  }

  /** True when nothing is queued, in flight or waiting for a retry. */
  isIdle(): boolean {
    return this.queue.length === 0 && this.inFlight.length === 0 && !this.sending;
  }

  /** Resolves when every queued event was delivered or dropped. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stop sending: abandon the request in flight and drop what is queued; every
   * waiter gets `HW_WORKER_CLOSED`. Returns the number of events dropped.
   */
  stop(): number {
    if (this.stopped) return 0;
    this.stopped = true;
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const left = [...this.inFlight, ...this.queue];
    this.queue = [];
    this.inFlight = [];
    this.newest.clear();
    for (const item of left) {
      item.deferred?.reject(
        new HeadwayWorkerError(WorkerErrorCode.CLOSED, 'the worker closed before the event was delivered', {
          job: item.job,
        }),
      );
    }
    this.notifyIdle();
    return left.length;
  }

  // -------------------------------------------------------------------------

  private schedule(): void {
    if (this.sending || this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.options.batchDelayMs);
  }

  private async run(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const batch = this.take();
        const retryAfterMs = await this.deliver(batch);
        if (retryAfterMs === null) {
          this.failures = 0;
          continue;
        }
        this.failures++;
        const delayMs = backoffDelay(this.failures, this.options.retry, retryAfterMs ?? undefined);
        notifyRetry(this.options, {
          request: 'POST /v1/events',
          attempt: this.failures,
          delayMs,
          error: this.retryCause,
        });
        try {
          await sleep(delayMs, { signal: this.stopping.signal });
        } catch (err) {
          // `stop()` cuts the wait short and the loop ends; anything else is a bug.
          if (!this.stopping.signal.aborted) throw err;
        }
      }
    } finally {
      this.sending = false;
      this.notifyIdle();
    }
  }

  /** The next request's events: in queue order, a prefix of each job's queued events. */
  private take(): Item[] {
    const { maxBatchEvents, maxBatchBytes } = this.options;
    const batch: Item[] = [];
    const rest: Item[] = [];
    const blocked = new Set<string>();
    let bytes = 16;
    let full = false;
    for (const item of this.queue) {
      if (full || blocked.has(item.job)) {
        rest.push(item);
        continue;
      }
      if (item.alone) {
        if (batch.length === 0) {
          batch.push(item);
          full = true;
        } else {
          // It goes in a request of its own; the job's later events may not overtake it.
          blocked.add(item.job);
          rest.push(item);
        }
        continue;
      }
      if (batch.length >= maxBatchEvents || (batch.length > 0 && bytes + item.bytes > maxBatchBytes)) {
        full = true;
        rest.push(item);
        continue;
      }
      batch.push(item);
      bytes += item.bytes;
    }
    this.queue = rest;
    for (const item of batch) if (this.newest.get(item.job) === item) this.newest.delete(item.job);
    this.inFlight = batch;
    return batch;
  }

  /** Put events back at the head of the queue, in their order, ahead of later ones. */
  private requeue(items: Item[]): void {
    this.queue = [...items, ...this.queue];
  }

  /**
   * Send one batch. Returns null when no retry is due, or the delay the hub
   * asked for (undefined: none) when some of it must be sent again.
   */
  private async deliver(batch: Item[]): Promise<number | undefined | null> {
    const body = { events: batch.map((i) => ({ job: i.job, ...i.event })) };
    let response: Awaited<ReturnType<HubClient['send']>>;
    try {
      response = await this.client.send('POST', '/v1/events', body);
    } catch (err) {
      return this.retryLater(batch, undefined, err as HeadwayWorkerError);
    } finally {
      this.inFlight = [];
    }
    if (this.stopped) return null;
    if (response.status === 200) return this.settle(batch, response.body);
    if (isRetryableStatus(response.status)) {
      return this.retryLater(batch, response.retryAfterMs, hubError(response));
    }
    const error = hubError(response);
    if ((response.status === 400 || response.status === 413) && batch.length > 1) {
      // Something in the request spoils all of it: send each event on its own to find it.
      for (const item of batch) item.alone = true;
      this.requeue(batch);
      return null;
    }
    for (const item of batch) this.refuse(item, error);
    this.options.onError(error);
    return null;
  }

  private retryLater(
    batch: Item[],
    retryAfterMs: number | undefined,
    cause: HeadwayWorkerError | undefined,
  ): number | undefined | null {
    if (this.stopped) return null;
    this.retryCause = cause;
    this.requeue(batch);
    return retryAfterMs;
  }

  /** Apply the per-job results of a `POST /v1/events` answer. */
  private settle(batch: Item[], body: unknown): number | undefined | null {
    const results = (body as { results?: PublishManyResult[] } | undefined)?.results;
    if (!Array.isArray(results)) {
      const error = new HeadwayWorkerError(WorkerErrorCode.BAD_RESPONSE, 'the hub answered without results');
      this.options.onError(error);
      return this.retryLater(batch, undefined, error);
    }
    const byJob = new Map<string, Item[]>();
    for (const item of batch) {
      let list = byJob.get(item.job);
      if (!list) byJob.set(item.job, (list = []));
      list.push(item);
    }
    const again = new Set<Item>();
    let retry = false;
    for (const result of results) {
      const items = byJob.get(result.job);
      if (!items) continue;
      byJob.delete(result.job);
      if ('seq' in result) {
        this.sentEvents += items.length;
        for (const item of items) item.deferred?.resolve();
        this.hooks.accepted(result.job, result.seq, result.control);
        continue;
      }
      const error = new HeadwayWorkerError(result.error.code as ErrorCode, result.error.message, {
        job: result.job,
      });
      if (RETRYABLE_CODES.has(error.code)) {
        for (const item of items) again.add(item);
        retry = true;
        this.retryCause = error;
      } else if (ENDING_CODES.has(error.code)) {
        for (const item of items) item.deferred?.reject(error);
        this.hooks.ended(result.job, error);
      } else if (items.length > 1) {
        // One of the job's events is refused, and with it all of them: isolate it.
        for (const item of items) {
          item.alone = true;
          again.add(item);
        }
      } else {
        this.refuse(items[0]!, error);
        // An acknowledgement overtaken by the user's next request is no error of the worker's.
        const kind = items[0]!.event.kind;
        const benign =
          error.code === ErrorCode.INVALID_TRANSITION && (kind === 'paused' || kind === 'resumed');
        if (!benign) this.options.onError(error);
      }
    }
    // A job missing from the answer was not applied: send it again.
    if (byJob.size > 0 && !retry) this.retryCause = undefined;
    for (const items of byJob.values()) {
      for (const item of items) again.add(item);
      retry = true;
    }
    if (again.size > 0) this.requeue(batch.filter((i) => again.has(i)));
    return retry ? undefined : null;
  }

  private refuse(item: Item, error: HeadwayWorkerError): void {
    item.deferred?.reject(error);
  }

  private removeAt(index: number): void {
    const [item] = this.queue.splice(index, 1);
    if (item && this.newest.get(item.job) === item) this.newest.delete(item.job);
    item?.deferred?.reject(new HeadwayWorkerError(WorkerErrorCode.DROPPED, 'the event queue is full'));
  }

  private noteDropped(count: number): void {
    this.dropped += count;
    const now = Date.now();
    if (now - this.lastDropReport >= DROP_REPORT_INTERVAL_MS) {
      this.lastDropReport = now;
      this.options.onError(
        new HeadwayWorkerError(
          WorkerErrorCode.DROPPED,
          `the event queue is full (${this.options.maxQueuedEvents} events): dropped progress and log events ` +
            `(${this.dropped} so far)`,
        ),
      );
    }
  }

  private notifyIdle(): void {
    if (!this.stopped && !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
