/**
 * The one storage interface of the hub. Every implementation (SQLite, PostgreSQL)
 * passes the same conformance suite (`test/store-conformance.ts`).
 *
 * What the contract deliberately leaves out: the store does not validate events,
 * assign seqs or fold state — the hub does that with the pure reducer and hands
 * the store finished rows. The store only guarantees that a `commit` is atomic and
 * durable when its promise resolves, and that it refuses a write whose `prevSeq`
 * no longer matches (another process wrote the job first), so that several hub
 * processes can share one database without ever forking a job's log.
 */
import type { JobEvent, JobState, JobStatus } from '@headway/protocol';
import { ServerErrorCode } from '../error-codes.js';
import type { KindSummary } from '../state/history.js';
import type { WebhookStore } from './webhook-store.js';

/** A job kind's learned durations, with the version an update must name. */
export interface StoredKindSummary {
  summary: KindSummary;
  /** 1 for the first write, one more for each later one. */
  version: number;
}

/** One job's changes in a commit. */
export interface JobWrite {
  /** The job's state after the events. */
  state: JobState;
  /** Seq of the stored state this write builds on: 0 when the job is created. */
  prevSeq: number;
  /** The new events, seq `prevSeq + 1` … `state.seq`, in order. */
  events: JobEvent[];
  /** Idempotency keys of the reported events, each with the seq it produced. */
  keys: { key: string; seq: number }[];
}

export interface ListJobsQuery {
  owner?: string;
  status?: JobStatus[];
  parent?: string;
  /** Only jobs whose id is in this list (a job-scoped token). */
  ids?: string[];
  kind?: string;
  /** A part of the id, name or owner, in any case (ASCII letters). */
  search?: string;
  /** Time ranges, ms since epoch: `createdAfter <= createdAt < createdBefore`, the same for `updatedAt`. */
  createdAfter?: number;
  createdBefore?: number;
  updatedAfter?: number;
  updatedBefore?: number;
  /** `updated` (default): most recently updated first; `created`: most recently created first. */
  order?: ListOrder;
  /** Most jobs to return (1–500). */
  limit: number;
  /** Opaque cursor from a previous page's `next` (of the same query). */
  cursor?: string;
  /** Also count the matching jobs per status, whatever `status` and `cursor` say. */
  counts?: boolean;
}

export type ListOrder = 'updated' | 'created';

/** Jobs per status. */
export type StatusCounts = Record<JobStatus, number>;

export interface ListJobsPage {
  jobs: JobState[];
  /** Cursor of the next page, absent on the last one. Pages are in the query's order, then id descending. */
  next?: string;
  /** With `counts`: the jobs matching the query but its status filter, per status. */
  counts?: StatusCounts;
}

export interface SweepOptions {
  /** Delete events whose `at` is older than this (ms since epoch). */
  eventsBefore: number;
  /** Delete finished jobs (and their events and keys) whose `finishedAt` is older than this. */
  jobsBefore: number;
  /** Rows deleted per statement, so that writers are never stalled for long. */
  batchSize: number;
}

export interface SweepResult {
  events: number;
  jobs: number;
}

/** Thrown by `commit` when a write's `prevSeq` does not match the stored job (or a created job exists). */
export class StoreConflictError extends Error {
  readonly code = ServerErrorCode.STORE_CONFLICT;
  constructor(readonly jobs: string[]) {
    super(`conflicting write for job(s) ${jobs.join(', ')}`);
    this.name = 'StoreConflictError';
  }
}

/** Thrown when the store cannot be reached; the hub answers 503 and retries nothing itself. */
export class StoreUnavailableError extends Error {
  readonly code = ServerErrorCode.STORE_UNAVAILABLE;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

export interface Store {
  /** Human-readable kind, e.g. `sqlite`. */
  readonly kind: string;

  /**
   * Webhooks and their delivery outbox. `commit` writes a pending delivery for
   * each stored event that a webhook matches, in the same transaction.
   */
  readonly webhooks: WebhookStore;

  /** Create or upgrade the schema. Idempotent; called once before use. */
  migrate(): Promise<void>;

  getJob(id: string): Promise<JobState | null>;
  getJobs(ids: readonly string[]): Promise<JobState[]>;
  listJobs(query: ListJobsQuery): Promise<ListJobsPage>;
  /** Ids of the job's descendants (children, grandchildren …), deepest last. */
  descendants(id: string): Promise<string[]>;

  /** Events of a job with seq > `since`, ascending, at most `limit`. */
  getEvents(job: string, since: number, limit: number): Promise<JobEvent[]>;

  /** Seqs already produced by these idempotency keys of the job. */
  findKeys(job: string, keys: readonly string[]): Promise<Map<string, number>>;

  /**
   * Atomically apply the writes of one batch (one transaction). Resolves once the
   * data is durable. Rejects with `StoreConflictError` when any write's `prevSeq`
   * does not match, in which case nothing of the batch is applied.
   */
  commit(writes: readonly JobWrite[]): Promise<void>;

  /** Delete jobs, their events and keys, leaving a tombstone for each id. */
  deleteJobs(ids: readonly string[]): Promise<void>;
  /** Whether the id belongs to a deleted job (tombstones are swept with finished jobs). */
  isDeleted(id: string): Promise<boolean>;

  /** The learned durations of a job kind, or null before its first completed job. */
  getKindSummary(kind: string): Promise<StoredKindSummary | null>;
  /**
   * Store a kind's summary if the stored version is still `version` (0: none is
   * stored yet). Resolves false, changing nothing, when another writer came first.
   */
  saveKindSummary(kind: string, summary: KindSummary, version: number): Promise<boolean>;

  /** Retention: delete old events and old finished jobs in small batches. */
  sweep(options: SweepOptions): Promise<SweepResult>;

  /** Cheap liveness check for `/readyz`. */
  ping(): Promise<boolean>;

  close(): Promise<void>;
}
