import { setTimeout as sleep } from 'node:timers/promises';
import {
  backoffDelay,
  type Control,
  type CreateJobInput,
  ErrorCode,
  type EventDataMap,
  type EventInput,
  type EventKind,
  type JobEvent,
  type JobState,
  type PublishResult,
} from '@headway/protocol';
import { Delivery } from '../delivery.js';
import { asHeadwayError, HeadwayError, notFound, WriteConflict } from '../errors.js';
import type { Metrics } from '../metrics.js';
import {
  createdData,
  isTerminal,
  type KindSummary,
  prepareControl,
  prepareEvent,
  reduce,
  type StallOptions,
  stallAt,
} from '../state/index.js';
import type { Store } from '../store/store.js';
import type { GroupCommit, PendingWrite } from './group-commit.js';
import { cacheEntry, type Entry, type JobCache } from './job-cache.js';
import type { KindHistory } from './kind-history.js';
import type { Rollups } from './rollups.js';

export type ControlAction = 'cancel' | 'pause' | 'resume';

export type PublishManyItem = EventInput & { job: string };
export type PublishManyResult =
  | { job: string; seq: number; control: Control }
  | { job: string; error: { code: ErrorCode; message: string } };

/** Attempts of one write request that keeps losing races with other processes for its job. */
const MAX_WRITE_ATTEMPTS = 12;
/** Random pause before a retry, ms: up to 2 ms at first, doubling with each attempt up to 64 ms. */
const WRITE_RETRY_BACKOFF = { initialDelayMs: 2, maxDelayMs: 64 };

/** What the write API needs of the hub. */
export interface WritesContext {
  store: Pick<Store, 'isDeleted' | 'descendants' | 'getJobs' | 'deleteJobs'>;
  cache: Pick<
    JobCache,
    | 'get'
    | 'touch'
    | 'has'
    | 'add'
    | 'delete'
    | 'forget'
    | 'load'
    | 'readFresh'
    | 'require'
    | 'current'
    | 'appliedKeys'
  >;
  commits: Pick<GroupCommit, 'addWrite' | 'whenCommitted' | 'whenBatchDone' | 'failure' | 'flush'>;
  rollups: Pick<Rollups, 'noteParent' | 'noteChildChange'>;
  /** Learned durations per job kind, handed to the reducer for the ETA. */
  history: Pick<KindHistory, 'load' | 'peek' | 'fresh'>;
  stall: StallOptions;
  metrics: Pick<Metrics, 'eventsIngested' | 'writeRetries'> | undefined;
  /** Largest serialized `metadata` or `result`, bytes. */
  maxJsonBytes: number;
  /** Hands a delivery to the bus (a deleted job's final one). */
  publish(delivery: Delivery): void;
  /** The time stamped on new events, ISO 8601. */
  isoNow(): string;
  /** Throws HW_ERR_SHUTTING_DOWN once the hub is closing. */
  assertOpen(): void;
}

/**
 * The write API: validate, sequence and fold a request's events on the job's
 * cached state, add them to the open batch, and answer once they are committed.
 * A request that lost a race for its job with another process is applied again
 * on the reloaded job.
 */
export class Writes {
  constructor(private readonly ctx: WritesContext) {}

  async createJob(id: string, input: CreateJobInput): Promise<JobState> {
    return this.retrying(() => this.createOnce(id, input));
  }

  private async createOnce(id: string, input: CreateJobInput): Promise<JobState> {
    const { cache } = this.ctx;
    this.ctx.assertOpen();
    const data = createdData({ ...input, id });
    this.checkSize('metadata', data.metadata);
    const [existing, parent, history] = await Promise.all([
      cache.load(id),
      input.parent ? cache.load(input.parent) : null,
      this.ctx.history.load(data.kind),
    ]);
    if (existing || cache.has(id)) throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" exists`);
    if (await this.ctx.store.isDeleted(id))
      throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" existed and was deleted`);
    if (input.parent) {
      if (!parent) throw notFound(input.parent);
      if (isTerminal(parent.head.status)) {
        throw new HeadwayError(ErrorCode.JOB_FINISHED, `parent job "${input.parent}" has finished`);
      }
    }
    // Checked again after the awaits: another request may have created it meanwhile.
    if (cache.has(id)) throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" exists`);
    const event: JobEvent = { job: id, seq: 1, kind: 'created', data, at: this.ctx.isoNow() };
    const state = reduce(null, event, history);
    const entry = cacheEntry(state);
    cache.add(id, entry);
    const write = this.ctx.commits.addWrite(id, entry, 0, true);
    write.events.push(event);
    write.states.push(state);
    if (parent) this.ctx.rollups.noteChildChange(parent, null, state);
    try {
      await this.ctx.commits.whenCommitted(write);
    } catch (err) {
      cache.forget(id, entry);
      throw err;
    }
    return state;
  }

  async publish(jobId: string, inputs: readonly EventInput[]): Promise<PublishResult> {
    return this.retrying(() => this.publishOnce(jobId, inputs));
  }

  private async publishOnce(jobId: string, inputs: readonly EventInput[]): Promise<PublishResult> {
    this.ctx.assertOpen();
    const entry = await this.ctx.cache.require(jobId);
    const history = await this.ctx.history.load(entry.head.kind);
    const keys = inputs.flatMap((i) => (i.key === undefined ? [] : [i.key]));
    const applied = keys.length > 0 ? await this.ctx.cache.appliedKeys(jobId, entry, keys) : null;
    const current = this.ctx.cache.current(jobId, entry);
    const write = this.fold(jobId, current, inputs, history, applied);
    const { seq, control } = current.head;
    if (write !== null) await this.ctx.commits.whenCommitted(write);
    return { seq, control };
  }

  /**
   * Folds `inputs` onto the job's head and adds them to the open batch,
   * synchronously, so that no other request interleaves: the write, or null when
   * every input was applied before (its idempotency key is known). Throws, with
   * nothing applied, when an input does not apply to the job as it is.
   */
  private fold(
    jobId: string,
    current: Entry,
    inputs: readonly EventInput[],
    history: KindSummary | null,
    applied: ReadonlySet<string> | null,
  ): PendingWrite | null {
    const first = current.head;
    let head = first;
    const events: JobEvent[] = [];
    const states: JobState[] = [];
    let newKeys: { key: string; seq: number }[] | undefined;
    let batchKeys: Set<string> | undefined;
    for (const input of inputs) {
      const key = input.key;
      if (key !== undefined && (current.keys.has(key) || applied?.has(key) || batchKeys?.has(key))) continue;
      const { kind, data } = prepareEvent(head, input);
      this.checkEventSize(kind, data);
      const at = this.ctx.isoNow();
      if (head.stalled) {
        // A report ends a stall, and subscribers learn it as an event of its own.
        const unstalled: JobEvent = { job: jobId, seq: head.seq + 1, kind: 'unstalled', data: {}, at };
        head = reduce(head, unstalled, history);
        events.push(unstalled);
        states.push(head);
      }
      const event: JobEvent = { job: jobId, seq: head.seq + 1, kind, data, at };
      head = reduce(head, event, history);
      events.push(event);
      states.push(head);
      if (key !== undefined) {
        (batchKeys ??= new Set()).add(key);
        (newKeys ??= []).push({ key, seq: event.seq });
      }
    }
    if (events.length === 0) return null;
    const write = this.ctx.commits.addWrite(jobId, current, first.seq, false);
    if (head.parent) this.ctx.rollups.noteParent(head.parent, first, head);
    current.head = head;
    write.events.push(...events);
    write.states.push(...states);
    if (newKeys !== undefined) {
      write.keys.push(...newKeys);
      for (const k of newKeys) current.keys.set(k.key, k.seq);
    }
    this.ctx.metrics?.eventsIngested.inc(events.length);
    return write;
  }

  /**
   * Applies each job's events, all-or-nothing per job. A job whose entry and
   * kind history are in memory, and whose events carry no idempotency key (a
   * busy job's progress), is folded right away, and all of them wait for their
   * commit together; the others go through `publish`.
   */
  async publishMany(items: readonly PublishManyItem[]): Promise<PublishManyResult[]> {
    const byJob = new Map<string, EventInput[]>();
    for (const { job, ...input } of items) {
      let list = byJob.get(job);
      if (!list) byJob.set(job, (list = []));
      list.push(input as EventInput);
    }
    const results: (PublishManyResult | Promise<PublishManyResult>)[] = [];
    const folded: { index: number; job: string; inputs: EventInput[]; write: PendingWrite }[] = [];
    let committed: Promise<void> | undefined;
    for (const [job, inputs] of byJob) {
      const ready = this.inMemory(job, inputs);
      if (ready === null) {
        results.push(this.publishManyJob(job, inputs, 1));
        continue;
      }
      try {
        this.ctx.assertOpen();
        const write = this.fold(job, ready.entry, inputs, ready.history, null);
        if (write !== null) {
          committed ??= this.ctx.commits.whenBatchDone();
          folded.push({ index: results.length, job, inputs, write });
        }
        const { seq, control } = ready.entry.head;
        results.push({ job, seq, control });
      } catch (err) {
        results.push(errorResult(job, err));
      }
    }
    if (committed !== undefined) {
      // Every folded write is in the same batch: one wait for it, then each write's own
      // outcome (a lost race fails that write alone, and it alone is applied again).
      const failed = await committed.then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      for (const f of folded) {
        const err = failed?.err ?? this.ctx.commits.failure(f.write);
        if (err === undefined) continue;
        results[f.index] =
          err instanceof WriteConflict ? this.publishManyJob(f.job, f.inputs, 2) : errorResult(f.job, err);
      }
    }
    return Promise.all(results);
  }

  /** One job of `publishMany` through `publish`, from its `attempt`th attempt on. */
  private async publishManyJob(
    job: string,
    inputs: readonly EventInput[],
    attempt: number,
  ): Promise<PublishManyResult> {
    try {
      return { job, ...(await this.retrying(() => this.publishOnce(job, inputs), attempt)) };
    } catch (err) {
      return errorResult(job, err);
    }
  }

  /** The job's entry and its kind's history, when a write of `inputs` needs no read to apply. */
  private inMemory(
    jobId: string,
    inputs: readonly EventInput[],
  ): { entry: Entry; history: KindSummary | null } | null {
    for (const input of inputs) if (input.key !== undefined) return null;
    const entry = this.ctx.cache.touch(jobId);
    if (entry === undefined || entry.stale) return null;
    const history = this.ctx.history.fresh(entry.head.kind);
    return history === undefined ? null : { entry, history };
  }

  async control(
    jobId: string,
    action: ControlAction,
    reason: string | undefined,
    by: string,
  ): Promise<JobState> {
    this.ctx.assertOpen();
    const state = await this.applyControl(jobId, action, reason, by);
    if (action === 'cancel') {
      const descendants = await this.ctx.store.descendants(jobId);
      await Promise.all(
        descendants.map((id) =>
          this.applyControl(id, action, reason, by).catch((err) => {
            // A child that finished or was deleted meanwhile needs no cancel.
            if (!(err instanceof HeadwayError)) throw err;
          }),
        ),
      );
    }
    return (await this.ctx.cache.readFresh(jobId)) ?? state;
  }

  private applyControl(jobId: string, action: ControlAction, reason: string | undefined, by: string) {
    return this.retrying(() => this.applyControlOnce(jobId, action, reason, by));
  }

  private async applyControlOnce(
    jobId: string,
    action: ControlAction,
    reason: string | undefined,
    by: string,
  ): Promise<JobState> {
    const entry = await this.ctx.cache.require(jobId);
    const history = await this.ctx.history.load(entry.head.kind);
    const current = this.ctx.cache.current(jobId, entry);
    const before = current.head;
    const prepared = prepareControl(before, action, reason, by);
    if (!prepared) return before;
    const { kind, data } = prepared;
    const event: JobEvent = { job: jobId, seq: before.seq + 1, kind, data, at: this.ctx.isoNow() };
    const after = reduce(before, event, history);
    const write = this.ctx.commits.addWrite(jobId, current, before.seq, false);
    current.head = after;
    write.events.push(event);
    write.states.push(after);
    if (after.parent) this.ctx.rollups.noteParent(after.parent, before, after);
    await this.ctx.commits.whenCommitted(write);
    return after;
  }

  /**
   * Append `stalled` to a job this process has cached if, as it is now, it is
   * stalled at `now`. Resolves with the event, or null when it is not stalled.
   */
  markStalled(jobId: string, now: number): Promise<JobEvent | null> {
    return this.retrying(async () => {
      const entry = this.ctx.cache.get(jobId);
      if (!entry) return null;
      const history = this.ctx.history.peek(entry.head.kind);
      const current = this.ctx.cache.current(jobId, entry);
      const before = current.head;
      const data = stallAt(before, history, this.ctx.stall, now);
      if (data === null) return null;
      const event: JobEvent = {
        job: jobId,
        seq: before.seq + 1,
        kind: 'stalled',
        data,
        at: this.ctx.isoNow(),
      };
      const after = reduce(before, event, history);
      const write = this.ctx.commits.addWrite(jobId, current, before.seq, false);
      current.head = after;
      write.events.push(event);
      write.states.push(after);
      await this.ctx.commits.whenCommitted(write);
      return event;
    });
  }

  async deleteJob(jobId: string): Promise<void> {
    const { cache, store } = this.ctx;
    this.ctx.assertOpen();
    const entry = await cache.require(jobId);
    // Let writes already accepted for these jobs land first, so nothing resurrects them.
    await this.ctx.commits.flush();
    const ids = [jobId, ...(await store.descendants(jobId))];
    const states = await store.getJobs(ids);
    await store.deleteJobs(ids);
    for (const state of states) {
      cache.delete(state.id);
      this.ctx.publish(deletion(state, this.ctx.isoNow()));
    }
    const parentId = entry.committed.parent;
    const parent = parentId ? await cache.load(parentId) : null;
    if (!parent) return;
    this.ctx.rollups.noteChildChange(parent, entry.committed, null);
    await this.ctx.commits.flush();
  }

  /**
   * Runs one write request, and again on the reloaded job when another process
   * wrote the job first (or a job whose roll-up shared the commit), a few times.
   */
  private async retrying<T>(apply: () => Promise<T>, first = 1): Promise<T> {
    for (let attempt = first; ; attempt++) {
      if (attempt > 1) {
        this.ctx.metrics?.writeRetries.inc();
        // Processes racing for one job would otherwise keep colliding in step.
        await sleep(backoffDelay(attempt - 1, WRITE_RETRY_BACKOFF));
      }
      try {
        return await apply();
      } catch (err) {
        if (!(err instanceof WriteConflict) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
      }
    }
  }

  private checkEventSize(kind: EventKind, data: EventDataMap[EventKind]): void {
    if (kind === 'metadata') this.checkSize('metadata', (data as EventDataMap['metadata']).metadata);
    else if (kind === 'completed') this.checkSize('result', (data as EventDataMap['completed']).result);
  }

  private checkSize(what: string, value: unknown): void {
    if (value === undefined) return;
    const bytes = Buffer.byteLength(JSON.stringify(value));
    if (bytes > this.ctx.maxJsonBytes) {
      throw new HeadwayError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `${what} is ${bytes} bytes; the limit is ${this.ctx.maxJsonBytes} bytes`,
      );
    }
  }
}

function errorResult(job: string, err: unknown): PublishManyResult {
  const e = asHeadwayError(err);
  return { job, error: { code: e.code, message: e.message } };
}

/** The final delivery of a deleted job: one seq past its last event. */
export function deletion(state: JobState, at: string): Delivery {
  const event: JobEvent = { job: state.id, seq: state.seq + 1, kind: 'deleted', data: {}, at };
  return new Delivery(event, { ...state, seq: event.seq, updatedAt: event.at }, state);
}
