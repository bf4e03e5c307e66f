import type { JobState } from '@headway/protocol';
import { Emitter } from './emitter.js';
import type { HeadwayClientError } from './errors.js';
import type { CollectionEvents, ControlAction, JobEventContext, JobEvents, Scope } from './types.js';

/** What handles and collections need from their client. @internal */
export interface Core {
  state(id: string): JobState | null;
  control(id: string, action: ControlAction, reason?: string): Promise<JobState>;
  release(target: JobHandle | JobCollection): void;
}

const ACTIVE = new Set(['queued', 'running', 'paused']);

/** Emit what one change means: the event by name, a reset, then `change`. */
function announce(target: Emitter<JobEvents>, state: JobState, ev: JobEventContext | null, reset: boolean) {
  if (ev) {
    target.emit('event', ev);
    target.emit(ev.event.kind, ev);
  }
  if (reset) target.emit('reset', { state });
  target.emit('change', { state });
}

/**
 * A live view of one job: its current `state`, its events as they happen, and
 * cancel, pause and resume. Get one with `client.job(id)`; `close()` it when done.
 */
export class JobHandle extends Emitter<JobEvents> {
  /** The last subscription error (e.g. `HW_ERR_NOT_FOUND`); cleared when the job's state arrives. */
  error: HeadwayClientError | null = null;

  /** @internal */
  constructor(
    readonly id: string,
    private readonly core: Core,
  ) {
    super();
  }

  /** The job's current state; null until the hub sent it. */
  get state(): JobState | null {
    return this.core.state(this.id);
  }

  /** Ask the job's worker to cancel; resolves with the state once the hub acknowledged. */
  cancel(reason?: string): Promise<JobState> {
    return this.core.control(this.id, 'cancel', reason);
  }

  /** Ask the job's worker to pause; resolves with the state once the hub acknowledged. */
  pause(reason?: string): Promise<JobState> {
    return this.core.control(this.id, 'pause', reason);
  }

  /** Ask the job's worker to resume; resolves with the state once the hub acknowledged. */
  resume(reason?: string): Promise<JobState> {
    return this.core.control(this.id, 'resume', reason);
  }

  /** Stop watching; the subscription ends when no other handle watches the job. */
  close(): void {
    this.core.release(this);
  }

  /** @internal */
  put(state: JobState, ev: JobEventContext | null, reset: boolean): void {
    this.error = null;
    announce(this, state, ev, reset);
  }

  /** @internal */
  fail(error: HeadwayClientError): void {
    this.error = error;
    this.emit('error', { error, job: this.id });
  }
}

/**
 * A live set of jobs: all jobs of the token's user (`scope: 'user'`) or every job
 * (`'all'`), new ones included, with the same events as a `JobHandle` plus `add`
 * and `remove`. Get one with `client.jobs()`; `close()` it when done.
 */
export class JobCollection extends Emitter<CollectionEvents> {
  private readonly map = new Map<string, JobState>();

  /** @internal */
  constructor(
    readonly scope: Scope,
    /** Most jobs kept; past it the oldest finished ones leave first. */
    readonly limit: number,
    private readonly core: Core,
  ) {
    super();
  }

  /** Number of jobs. */
  get size(): number {
    return this.map.size;
  }

  /** A job's state, if it is in the collection. */
  get(id: string): JobState | undefined {
    return this.map.get(id);
  }

  /** Every job, newest first. */
  list(): JobState[] {
    return [...this.map.values()].sort(byNewest);
  }

  /** Stop watching. */
  close(): void {
    this.core.release(this);
  }

  /** @internal */
  put(state: JobState, ev: JobEventContext | null, reset: boolean): void {
    const known = this.map.has(state.id);
    if (ev?.event.kind === 'deleted') {
      if (!known) return;
      this.map.delete(state.id);
      this.emit('event', ev);
      this.emit('deleted', ev);
      this.emit('remove', { id: state.id });
      return;
    }
    this.map.set(state.id, state);
    if (!known) this.emit('add', { state });
    announce(this as unknown as Emitter<JobEvents>, state, ev, reset);
    if (!known && this.map.size > this.limit) this.trim();
  }

  /** @internal */
  fail(error: HeadwayClientError): void {
    this.emit('error', { error, job: '' });
  }

  /** Drop the least recently updated jobs, finished ones first, down to the limit. */
  private trim(): void {
    const order = [...this.map.values()].sort(
      (a, b) => +ACTIVE.has(a.status) - +ACTIVE.has(b.status) || (a.updatedAt < b.updatedAt ? -1 : 1),
    );
    for (const s of order.slice(0, this.map.size - this.limit)) {
      this.map.delete(s.id);
      this.emit('remove', { id: s.id });
    }
  }
}

function byNewest(a: JobState, b: JobState): number {
  return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1;
}
