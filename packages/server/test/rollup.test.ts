import type { ChildrenSummary, EventInput, JobState, JobStatus } from '@headway/protocol';
import { describe, expect, it } from 'vitest';
import {
  applyChildChange,
  childPercent,
  createdData,
  prepareEvent,
  reduce,
  rollupOutcome,
} from '../src/state/index.js';

const T0 = Date.parse('2025-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function job(id: string, parent: string | null = null): JobState {
  const data = createdData({ id, owner: 'alice', ...(parent ? { parent } : {}) });
  return reduce(null, { job: id, seq: 1, kind: 'created', data, at: at(0) });
}

function report(state: JobState, input: EventInput, ms: number): JobState {
  const { kind, data } = prepareEvent(state, input);
  return reduce(state, { job: state.id, seq: state.seq + 1, kind, data, at: at(ms) });
}

const summary = (s: Partial<ChildrenSummary>): ChildrenSummary => ({
  total: 0,
  completed: 0,
  failed: 0,
  cancelled: 0,
  percentSum: 0,
  ...s,
});

const finish: Record<'completed' | 'failed' | 'cancelled', EventInput> = {
  completed: { kind: 'completed' },
  failed: { kind: 'failed', error: { message: 'boom' } },
  cancelled: { kind: 'cancelled' },
};

/** A batch of children, with the parent's summary kept up to date as the hub does. */
class Batch {
  parent: JobState;
  summary: ChildrenSummary | null = null;
  children = new Map<string, JobState>();
  ms = 0;

  constructor(size: number) {
    this.parent = job('batch');
    for (let i = 0; i < size; i++) this.add(`c${i}`);
  }

  private change(before: JobState | null, after: JobState | null) {
    this.summary = applyChildChange(this.summary, before, after);
    this.ms += 1000;
    this.parent = reduce(this.parent, {
      job: 'batch',
      seq: this.parent.seq + 1,
      kind: 'children',
      data: this.summary,
      at: at(this.ms),
    });
  }

  add(id: string) {
    const child = job(id, 'batch');
    this.children.set(id, child);
    this.change(null, child);
  }

  report(id: string, input: EventInput) {
    const before = this.children.get(id)!;
    const after = report(before, input, this.ms + 500);
    this.children.set(id, after);
    this.change(before, after);
  }

  remove(id: string) {
    const before = this.children.get(id)!;
    this.children.delete(id);
    this.change(before, null);
  }

  outcome() {
    return rollupOutcome(this.parent, this.summary!);
  }
}

describe('applyChildChange', () => {
  it('counts a batch of 10 children through adds, progress, finishes and deletes', () => {
    const b = new Batch(10);
    expect(b.summary).toEqual(summary({ total: 10 }));
    expect(b.parent.status).toBe('queued');
    expect(b.parent.progress.percent).toBe(0);

    b.report('c0', { kind: 'progress', percent: 50 });
    b.report('c1', { kind: 'progress', percent: 25.5 });
    expect(b.summary).toEqual(summary({ total: 10, percentSum: 75.5 }));
    expect(b.parent.status).toBe('running');
    expect(b.parent.progress.percent).toBe(7.55);

    b.report('c0', { kind: 'progress', percent: 80 });
    expect(b.summary?.percentSum).toBe(105.5);

    b.report('c0', finish.completed);
    b.report('c2', finish.completed);
    b.report('c1', finish.failed);
    b.report('c3', finish.cancelled);
    expect(b.summary).toEqual(summary({ total: 10, completed: 2, failed: 1, cancelled: 1, percentSum: 400 }));
    expect(b.parent.progress.percent).toBe(40);
    expect(b.outcome()).toBeNull();

    // Deleting a finished child takes back its count and its 100%.
    b.remove('c3');
    expect(b.summary).toEqual(summary({ total: 9, completed: 2, failed: 1, cancelled: 0, percentSum: 300 }));
    expect(b.parent.progress.percent).toBe(33.33);

    b.report('c4', { kind: 'progress', percent: 60 });
    b.remove('c4');
    expect(b.summary).toEqual(summary({ total: 8, completed: 2, failed: 1, percentSum: 300 }));

    b.add('c10');
    expect(b.summary).toEqual(summary({ total: 9, completed: 2, failed: 1, percentSum: 300 }));

    for (const id of ['c5', 'c6', 'c7', 'c8', 'c9', 'c10']) b.report(id, finish.completed);
    expect(b.summary).toEqual(summary({ total: 9, completed: 8, failed: 1, percentSum: 900 }));
    expect(b.parent.progress.percent).toBe(100);
  });

  it('counts a finished child as 100% whatever its outcome', () => {
    let child = report(job('c'), { kind: 'progress', percent: 30 }, 1000);
    expect(childPercent(child)).toBe(30);
    for (const kind of ['completed', 'failed', 'cancelled'] as const) {
      expect(childPercent(report(child, finish[kind], 2000))).toBe(100);
    }
    child = report(job('c'), finish.cancelled, 1000);
    expect(applyChildChange(null, null, child)).toEqual(summary({ total: 1, cancelled: 1, percentSum: 100 }));
  });

  it('does not drift over many two-decimal changes', () => {
    let s: ChildrenSummary | null = null;
    let child = job('c');
    s = applyChildChange(s, null, child);
    for (let i = 1; i <= 300; i++) {
      const next = report(child, { kind: 'progress', percent: (i * 33.33) % 100 }, i * 1000);
      s = applyChildChange(s, child, next);
      child = next;
    }
    expect(s.percentSum).toBe(child.progress.percent);
    expect(applyChildChange(s, child, null)).toEqual(summary({}));
  });

  it('does not modify the summary it is given', () => {
    const given = Object.freeze(summary({ total: 1, percentSum: 10 }));
    const next = applyChildChange(given, null, job('c'));
    expect(next).not.toBe(given);
    expect(given).toEqual(summary({ total: 1, percentSum: 10 }));
  });

  it('starts from an empty summary', () => {
    expect(applyChildChange(null, null, job('c'))).toEqual(summary({ total: 1 }));
  });
});

describe('rollupOutcome', () => {
  const parent = (status: JobStatus = 'running'): JobState => ({ ...job('batch'), status });

  it('is null while a child is unfinished, and without children', () => {
    expect(rollupOutcome(parent(), summary({ total: 10, completed: 9, percentSum: 950 }))).toBeNull();
    expect(rollupOutcome(parent(), summary({}))).toBeNull();
  });

  it.each(['completed', 'failed', 'cancelled'] as const)('is null once the parent is %s', (status) => {
    expect(rollupOutcome(parent(status), summary({ total: 2, completed: 2, percentSum: 200 }))).toBeNull();
  });

  it('completes with the counts when every child completed', () => {
    expect(rollupOutcome(parent(), summary({ total: 10, completed: 10, percentSum: 1000 }))).toEqual({
      kind: 'completed',
      result: { completed: 10, failed: 0, cancelled: 0 },
    });
  });

  it('completes when some children completed and the others were cancelled', () => {
    expect(
      rollupOutcome(parent(), summary({ total: 10, completed: 7, cancelled: 3, percentSum: 1000 })),
    ).toEqual({
      kind: 'completed',
      result: { completed: 7, failed: 0, cancelled: 3 },
    });
  });

  it('fails when any child failed', () => {
    const outcome = rollupOutcome(parent(), summary({ total: 10, completed: 7, failed: 2, cancelled: 1 }));
    expect(outcome).toEqual({
      kind: 'failed',
      error: { code: 'CHILDREN_FAILED', message: '2 of 10 children failed', retryable: false },
    });
  });

  it('is cancelled when every child was cancelled', () => {
    expect(rollupOutcome(parent(), summary({ total: 10, cancelled: 10 }))).toMatchObject({
      kind: 'cancelled',
    });
  });

  it('applies to a queued or paused parent', () => {
    const done = summary({ total: 1, completed: 1, percentSum: 100 });
    expect(rollupOutcome(parent('queued'), done)?.kind).toBe('completed');
    expect(rollupOutcome(parent('paused'), done)?.kind).toBe('completed');
  });
});

describe('batch end to end', () => {
  function settle(b: Batch): JobState {
    const outcome = b.outcome();
    return outcome === null ? b.parent : report(b.parent, outcome, b.ms + 100);
  }

  it('completes the parent when the last child completes', () => {
    const b = new Batch(10);
    for (let i = 0; i < 9; i++) b.report(`c${i}`, finish.completed);
    expect(settle(b).status).toBe('running');
    b.report('c9', finish.completed);
    const parent = settle(b);
    expect(parent.status).toBe('completed');
    expect(parent.result).toEqual({ completed: 10, failed: 0, cancelled: 0 });
    expect(parent.progress.percent).toBe(100);
  });

  it('fails the parent when a child failed', () => {
    const b = new Batch(10);
    for (let i = 0; i < 10; i++) b.report(`c${i}`, i === 4 ? finish.failed : finish.completed);
    const parent = settle(b);
    expect(parent.status).toBe('failed');
    expect(parent.error).toEqual({
      code: 'CHILDREN_FAILED',
      message: '1 of 10 children failed',
      retryable: false,
      stage: null,
    });
  });

  it('cancels the parent when every child was cancelled', () => {
    const b = new Batch(10);
    for (let i = 0; i < 10; i++) b.report(`c${i}`, finish.cancelled);
    expect(settle(b).status).toBe('cancelled');
  });

  it('finishes the batch when its last unfinished child is deleted', () => {
    const b = new Batch(10);
    for (let i = 0; i < 9; i++) b.report(`c${i}`, finish.completed);
    b.report('c9', { kind: 'progress', percent: 10 });
    expect(b.outcome()).toBeNull();
    b.remove('c9');
    expect(b.outcome()).toEqual({ kind: 'completed', result: { completed: 9, failed: 0, cancelled: 0 } });
  });

  it('keeps recording children after the parent finished, without changing how it ended', () => {
    const b = new Batch(2);
    b.report('c0', finish.completed);
    b.report('c1', finish.failed);
    b.parent = settle(b);
    expect(b.parent.status).toBe('failed');
    b.remove('c1');
    expect(b.parent.status).toBe('failed');
    expect(b.parent.children).toEqual(summary({ total: 1, completed: 1, percentSum: 100 }));
    expect(b.outcome()).toBeNull();
  });
});
