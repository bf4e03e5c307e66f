/**
 * Job states and store writes shared by the suites: complete job states, and the
 * commits that build a job's log one progress event per seq.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import type { JobWrite } from '@headway/server';

/** The time of every fixture state and event. */
export const FIXTURE_TIME = '2024-05-01T12:00:00.000Z';

/** A running job of `alice` at `seq`, `seq` percent done, every time `FIXTURE_TIME`; `overrides` replace fields. */
export function runningJob(id: string, seq: number, overrides: Partial<JobState> = {}): JobState {
  return {
    id,
    owner: 'alice',
    name: id,
    parent: null,
    status: 'running',
    progress: { percent: seq },
    stage: null,
    stages: [],
    message: null,
    eta: null,
    metadata: {},
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: FIXTURE_TIME,
    updatedAt: FIXTURE_TIME,
    startedAt: FIXTURE_TIME,
    finishedAt: null,
    seq,
    kind: null,
    ...overrides,
  };
}

/**
 * The write that extends `id` from `prevSeq` to `seq` with a progress event per
 * seq. A `writer` is named as the message of its events and of the state, so
 * that a test can tell whose write a store kept.
 */
export function jobWrite(id: string, prevSeq: number, seq: number, writer: string | null = null): JobWrite {
  const events: JobEvent[] = [];
  for (let s = prevSeq + 1; s <= seq; s++) {
    const data = writer === null ? { percent: s } : { percent: s, message: writer };
    events.push({ job: id, seq: s, kind: 'progress', data, at: FIXTURE_TIME });
  }
  const state = writer === null ? runningJob(id, seq) : runningJob(id, seq, { message: writer });
  return { state, prevSeq, events, keys: [] };
}
