/**
 * A commit of the PostgreSQL store as column arrays: one multi-row statement per
 * kind of write, whatever the number of jobs, events and keys in the batch.
 */
import type { JobState } from '@headway/protocol';
import { eventColumns, type JobColumns, jobColumns } from './rows.js';
import type { JobWrite } from './store.js';

/** Job rows by column: each field of `JobColumns` as an array. */
type JobArrays = { [K in keyof JobColumns]: JobColumns[K][] };

/** The parameters of the multi-row statements of one commit. */
export interface Batch {
  creates: JobArrays;
  updates: JobArrays & { prevSeq: number[] };
  events: { job: string[]; seq: number[]; kind: string[]; at: number[]; data: string[] };
  keys: { job: string[]; key: string[]; seq: number[] };
  /** Jobs whose writes in the batch do not build on one another. */
  broken: Set<string>;
}

function jobArrays(): JobArrays {
  return {
    id: [],
    owner: [],
    name: [],
    kind: [],
    parent: [],
    status: [],
    seq: [],
    createdAt: [],
    updatedAt: [],
    finishedAt: [],
    state: [],
  };
}

/**
 * Turns a batch into column arrays for the multi-row statements. Several writes for
 * one job become one job row built on the first write's `prevSeq`, with the last
 * write's state and every write's events and keys. This is exactly what applying
 * them one after another does, provided each write builds on the previous one's
 * seq; a write that does not would fail its precondition, so its job conflicts.
 */
export function planBatch(writes: readonly JobWrite[]): Batch {
  const perJob = new Map<string, { prevSeq: number; state: JobState; writes: JobWrite[] }>();
  const broken = new Set<string>();
  for (const w of writes) {
    const id = w.state.id;
    if (broken.has(id)) continue;
    const plan = perJob.get(id);
    if (plan === undefined) {
      perJob.set(id, { prevSeq: w.prevSeq, state: w.state, writes: [w] });
    } else if (w.prevSeq !== 0 && w.prevSeq === plan.state.seq) {
      plan.state = w.state;
      plan.writes.push(w);
    } else {
      perJob.delete(id);
      broken.add(id);
    }
  }

  const batch: Batch = {
    creates: jobArrays(),
    updates: { ...jobArrays(), prevSeq: [] },
    events: { job: [], seq: [], kind: [], at: [], data: [] },
    keys: { job: [], key: [], seq: [] },
    broken,
  };
  for (const [id, plan] of perJob) {
    const row = jobColumns(plan.state);
    const cols = plan.prevSeq === 0 ? batch.creates : batch.updates;
    cols.id.push(id);
    cols.owner.push(row.owner);
    cols.parent.push(row.parent);
    cols.status.push(row.status);
    cols.seq.push(row.seq);
    cols.updatedAt.push(row.updatedAt);
    cols.finishedAt.push(row.finishedAt);
    cols.state.push(row.state);
    cols.name.push(row.name);
    cols.kind.push(row.kind);
    cols.createdAt.push(row.createdAt);
    if (plan.prevSeq !== 0) batch.updates.prevSeq.push(plan.prevSeq);
    for (const w of plan.writes) {
      for (const e of w.events) {
        const { at, data } = eventColumns(e);
        batch.events.job.push(e.job);
        batch.events.seq.push(e.seq);
        batch.events.kind.push(e.kind);
        batch.events.at.push(at);
        batch.events.data.push(data);
      }
      for (const k of w.keys) {
        batch.keys.job.push(id);
        batch.keys.key.push(k.key);
        batch.keys.seq.push(k.seq);
      }
    }
  }
  return batch;
}
