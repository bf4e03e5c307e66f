/**
 * Rows as both SQL stores write and read them: a job is its indexed columns
 * plus the whole state as JSON, and an event is its seq, kind, time and data.
 * Times are milliseconds in the database and ISO-8601 strings outside it.
 */
import { JOB_STATUSES, type JobEvent, type JobState, type JobStatus } from '@headway/protocol';
import { type Estimator, estimatorOf, withEstimator } from '../state/estimator.js';
import { stateJson } from '../state/state-json.js';
import { toMs } from './timestamps.js';

/** Key of the estimator inside a stored state document; never part of the state a reader gets. */
const STORED_ESTIMATOR = 'estimator';

/** Bounds the recursive walk of `descendants` should a parent chain ever form a cycle. */
export const MAX_DESCENDANT_DEPTH = 64;

/** The columns of a job row. */
export interface JobColumns {
  id: string;
  owner: string;
  /** Name and kind, for the list's search and filters. */
  name: string;
  kind: string | null;
  parent: string | null;
  status: string;
  seq: number;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  /** The whole state, serialized, with the estimator the job JSON leaves out. */
  state: string;
}

/** The row of a job state. */
export function jobColumns(state: JobState): JobColumns {
  return {
    id: state.id,
    owner: state.owner,
    name: state.name,
    kind: state.kind ?? null,
    parent: state.parent,
    status: state.status,
    seq: state.seq,
    createdAt: toMs(state.createdAt),
    updatedAt: toMs(state.updatedAt),
    finishedAt: state.finishedAt === null ? null : toMs(state.finishedAt),
    state: storedStateJson(state),
  };
}

/**
 * The document a job's state is stored as, in JSON: the state with its
 * estimator (kept beside the public fields so that a reloaded job keeps its
 * running times). It is built on the state's JSON that its deliveries
 * share (`stateJson`): an event that is stored and delivered serializes its state
 * once, and only the small estimator is added.
 */
export function storedStateJson(state: JobState): string {
  const json = stateJson(state);
  const estimator = estimatorOf(state);
  if (estimator === null) return json;
  // A state is a non-empty object: its JSON ends with the closing brace.
  return `${json.slice(0, -1)},"${STORED_ESTIMATOR}":${JSON.stringify(estimator)}}`;
}

/** The job state of a stored document: serialized (SQLite) or parsed already (PostgreSQL's JSONB). */
export function jobOfRow(stored: string | JobState): JobState {
  return stateOfStored(typeof stored === 'string' ? (JSON.parse(stored) as JobState) : stored);
}

/** The state stored as `doc` (parsed JSON), with its estimator attached again out of sight. */
export function stateOfStored(doc: JobState): JobState {
  const { [STORED_ESTIMATOR]: estimator, ...state } = doc as JobState & { estimator?: Estimator | null };
  // A state stored before running times were tracked holds an older shape: start afresh.
  const current = estimator && typeof estimator.activeMs === 'number' ? estimator : null;
  return withEstimator(state as JobState, current);
}

/** The columns of an event row: its time in ms and its data serialized (`null` when absent). */
export function eventColumns(event: JobEvent): { at: number; data: string } {
  return { at: toMs(event.at), data: JSON.stringify(event.data ?? null) };
}

/** An event row as read back; PostgreSQL returns BIGINTs as strings. */
export interface EventRow {
  seq: number | string;
  kind: JobEvent['kind'];
  at: number | string;
  data: JobEvent['data'];
}

/** The event of a job's log stored in `row`. */
export function eventOfRow(job: string, row: EventRow): JobEvent {
  return {
    job,
    seq: Number(row.seq),
    kind: row.kind,
    data: row.data,
    at: new Date(Number(row.at)).toISOString(),
  };
}

/** Jobs in the order of `ids`, skipping missing ones and repeats. */
export function inIdOrder<S>(
  ids: readonly string[],
  rows: Iterable<{ id: string; state: S }>,
  toState: (stored: S, id: string) => JobState,
): JobState[] {
  const byId = new Map<string, S>();
  for (const row of rows) byId.set(row.id, row.state);
  const jobs: JobState[] = [];
  for (const id of ids) {
    const stored = byId.get(id);
    if (stored === undefined) continue;
    byId.delete(id);
    jobs.push(toState(stored, id));
  }
  return jobs;
}

/** Counts per status from `GROUP BY status` rows, every status present (0 when none). */
export function statusCounts(
  rows: Iterable<{ status: JobStatus; n: number | string }>,
): Record<JobStatus, number> {
  const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const row of rows) if (row.status in counts) counts[row.status] = Number(row.n);
  return counts;
}
