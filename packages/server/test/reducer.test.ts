import type {
  CreateJobInput,
  EventDataMap,
  EventInput,
  EventKind,
  JobEvent,
  JobState,
  ReportableKind,
} from '@headway/protocol';
import { describe, expect, it } from 'vitest';
import { createdData, isTerminal, prepareControl, prepareEvent, reduce } from '../src/state/index.js';

const T0 = Date.parse('2025-03-01T12:00:00.000Z');
/** ISO time `ms` after T0: tests never read the clock. */
const at = (ms: number) => new Date(T0 + ms).toISOString();

function create(input: Partial<CreateJobInput> = {}, ms = 0): JobState {
  const data = createdData({ id: 'job-1', owner: 'alice', ...input });
  return reduce(null, { job: input.id ?? 'job-1', seq: 1, kind: 'created', data, at: at(ms) });
}

function event<K extends EventKind>(state: JobState, kind: K, data: EventDataMap[K], ms: number): JobEvent {
  return { job: state.id, seq: state.seq + 1, kind, data, at: at(ms) } as JobEvent;
}

function fold<K extends EventKind>(state: JobState, kind: K, data: EventDataMap[K], ms: number): JobState {
  return reduce(state, event(state, kind, data, ms));
}

/** Validate, then fold, as the hub does with a worker's report. */
function report(state: JobState, input: EventInput, ms = 1000): JobState {
  const { kind, data } = prepareEvent(state, input);
  return reduce(state, { job: state.id, seq: state.seq + 1, kind, data, at: at(ms) });
}

function control(
  state: JobState,
  action: 'cancel' | 'pause' | 'resume',
  ms = 1000,
  reason?: string,
): JobState {
  const prepared = prepareControl(state, action, reason, 'admin');
  if (prepared === null) return state;
  return reduce(state, { job: state.id, seq: state.seq + 1, ...prepared, at: at(ms) });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const running = () => report(create(), { kind: 'log', message: 'started' }, 500);
const paused = () => report(running(), { kind: 'paused' }, 600);

/** One valid report of each kind a worker can send. */
const reports: Record<ReportableKind, EventInput> = {
  progress: { kind: 'progress', percent: 10 },
  stage: { kind: 'stage', name: 'download' },
  log: { kind: 'log', message: 'hello' },
  metadata: { kind: 'metadata', metadata: { a: 1 } },
  paused: { kind: 'paused' },
  resumed: { kind: 'resumed' },
  completed: { kind: 'completed' },
  failed: { kind: 'failed', error: { message: 'boom' } },
  cancelled: { kind: 'cancelled' },
};

describe('createdData', () => {
  it('applies the defaults', () => {
    expect(createdData({ id: 'j', owner: 'u', stages: [{ name: 'a' }, { name: 'b', weight: 3 }] })).toEqual({
      owner: 'u',
      name: 'j',
      parent: null,
      stages: [
        { name: 'a', weight: 1 },
        { name: 'b', weight: 3 },
      ],
      metadata: {},
      public: false,
    });
  });

  it('keeps given values, including an empty name', () => {
    const data = createdData({
      id: 'j',
      owner: 'u',
      name: '',
      parent: 'p',
      metadata: { k: 'v' },
      public: true,
    });
    expect(data).toEqual({
      owner: 'u',
      name: '',
      parent: 'p',
      stages: [],
      metadata: { k: 'v' },
      public: true,
    });
  });

  it('copies the metadata rather than sharing it', () => {
    const metadata = { k: 'v' };
    expect(createdData({ id: 'j', owner: 'u', metadata }).metadata).not.toBe(metadata);
  });

  it.each([
    ['a repeated name', [{ name: 'a' }, { name: 'a' }]],
    ['an empty name', [{ name: '' }]],
    ['a zero weight', [{ name: 'a', weight: 0 }]],
    ['a negative weight', [{ name: 'a', weight: -1 }]],
    ['a NaN weight', [{ name: 'a', weight: Number.NaN }]],
    ['an infinite weight', [{ name: 'a', weight: Number.POSITIVE_INFINITY }]],
  ])('refuses a plan with %s', (_, stages) => {
    expect(() => createdData({ id: 'j', owner: 'u', stages })).toThrow(
      expect.objectContaining({ code: 'HW_ERR_INVALID_VALUE' }),
    );
  });

  it('refuses metadata that is not an object', () => {
    const metadata = [1, 2] as unknown as CreateJobInput['metadata'];
    expect(codeOf(() => createdData({ id: 'j', owner: 'u', metadata }))).toBe('HW_ERR_INVALID_VALUE');
  });
});

describe('reduce: created', () => {
  it('builds the initial state', () => {
    const state = create(
      { name: 'Encode', stages: [{ name: 'a', weight: 2 }], metadata: { k: 1 }, public: true },
      0,
    );
    expect(state).toEqual({
      id: 'job-1',
      owner: 'alice',
      name: 'Encode',
      parent: null,
      status: 'queued',
      progress: { percent: 0 },
      stage: null,
      stages: [{ name: 'a', weight: 2, startedAt: null, endedAt: null }],
      message: null,
      eta: null,
      metadata: { k: 1 },
      result: null,
      error: null,
      control: { cancelRequested: false, paused: false },
      children: null,
      public: true,
      createdAt: at(0),
      updatedAt: at(0),
      startedAt: null,
      finishedAt: null,
      seq: 1,
      kind: null,
      stalled: null,
    });
    // The estimator is the hub's own: never in the job's JSON.
    expect(JSON.parse(JSON.stringify(state))).not.toHaveProperty('estimator');
  });

  it('refuses created on an existing job and any other event before created', () => {
    const state = create();
    const data = createdData({ id: 'job-1', owner: 'alice' });
    expect(codeOf(() => fold(state, 'created', data, 1))).toBe('HW_ERR_JOB_EXISTS');
    const progress: JobEvent = { job: 'x', seq: 1, kind: 'progress', data: { percent: 1 }, at: at(0) };
    expect(codeOf(() => reduce(null, progress))).toBe('HW_ERR_INTERNAL');
  });
});

describe('reduce: purity', () => {
  it('never modifies the state or the event, and returns a new object', () => {
    let state = deepFreeze(create({ stages: [{ name: 'a' }, { name: 'b', weight: 2 }], metadata: { x: 1 } }));
    const steps: [EventKind, EventDataMap[EventKind]][] = [
      ['log', { message: 'hi', level: 'info' }],
      ['progress', { percent: 40, current: 4, total: 10, unit: 'files', message: 'four' }],
      ['progress', { percent: 80, current: 8 }],
      ['metadata', { metadata: { x: null, y: 2 } }],
      ['stage', { name: 'b', message: 'next' }],
      ['pause_requested', { by: 'u' }],
      ['paused', {}],
      ['progress', { percent: 10 }],
      ['resume_requested', { by: 'u' }],
      ['resumed', {}],
      ['cancel_requested', { by: 'u' }],
      ['children', { total: 2, completed: 1, failed: 0, cancelled: 0, percentSum: 150 }],
      ['deleted', {}],
      ['failed', { error: { code: 'X', message: 'm', retryable: true, stage: 'b' } }],
      ['children', { total: 2, completed: 2, failed: 0, cancelled: 0, percentSum: 200 }],
      ['deleted', {}],
    ];
    let ms = 1000;
    for (const [kind, data] of steps) {
      const ev = deepFreeze(event(state, kind, data, ms));
      const before = JSON.stringify(state);
      const next = reduce(state, ev);
      expect(JSON.stringify(state)).toBe(before);
      expect(next).not.toBe(state);
      expect(next.seq).toBe(state.seq + 1);
      expect(next.updatedAt).toBe(at(ms));
      state = deepFreeze(next);
      ms += 1000;
    }
    expect(state.status).toBe('failed');
  });

  it('does not modify the state in prepareEvent or prepareControl', () => {
    const state = deepFreeze(running());
    const before = JSON.stringify(state);
    for (const input of Object.values(reports)) {
      try {
        prepareEvent(state, input);
      } catch {
        // Refusals are tested elsewhere; only mutation matters here.
      }
    }
    prepareControl(state, 'cancel', 'r', 'u');
    prepareControl(state, 'pause', undefined, 'u');
    expect(JSON.stringify(state)).toBe(before);
  });
});

describe('transitions', () => {
  it.each(['progress', 'stage', 'log', 'metadata'] as const)('%s moves a queued job to running', (kind) => {
    const state = report(create(), reports[kind], 2000);
    expect(state.status).toBe('running');
    expect(state.startedAt).toBe(at(2000));
  });

  it('keeps startedAt at the first transition to running', () => {
    const state = report(running(), { kind: 'progress', percent: 5 }, 9000);
    expect(state.startedAt).toBe(at(500));
  });

  it('pauses a queued or running job', () => {
    const fromQueued = report(create(), { kind: 'paused', reason: 'quota' });
    expect(fromQueued.status).toBe('paused');
    expect(fromQueued.startedAt).toBeNull();
    // The worker's own pause is a status, not a user's request.
    expect(fromQueued.control.paused).toBe(false);
    expect(paused().status).toBe('paused');
  });

  it('resumes only a paused job', () => {
    expect(codeOf(() => prepareEvent(create(), reports.resumed))).toBe('HW_ERR_INVALID_TRANSITION');
    expect(codeOf(() => prepareEvent(running(), reports.resumed))).toBe('HW_ERR_INVALID_TRANSITION');
    const resumed = report(paused(), reports.resumed, 700);
    expect(resumed.status).toBe('running');
    expect(resumed.control.paused).toBe(false);
  });

  it('sets startedAt when a job paused while queued resumes', () => {
    const state = report(report(create(), reports.paused, 100), reports.resumed, 200);
    expect(state.status).toBe('running');
    expect(state.startedAt).toBe(at(200));
  });

  it('refuses to pause a paused job', () => {
    expect(codeOf(() => prepareEvent(paused(), reports.paused))).toBe('HW_ERR_INVALID_TRANSITION');
  });

  it.each([
    'progress',
    'stage',
    'log',
    'metadata',
  ] as const)('accepts %s while paused and stays paused', (kind) => {
    const state = report(paused(), reports[kind], 800);
    expect(state.status).toBe('paused');
  });

  it.each([
    ['queued', create],
    ['running', running],
    ['paused', paused],
  ] as const)('finishes a %s job with any terminal event', (_, make) => {
    expect(report(make(), reports.completed).status).toBe('completed');
    expect(report(make(), reports.failed).status).toBe('failed');
    expect(report(make(), reports.cancelled).status).toBe('cancelled');
  });

  it.each(['completed', 'failed', 'cancelled'] as const)('refuses every report on a %s job', (terminal) => {
    const state = report(running(), reports[terminal], 900);
    expect(isTerminal(state.status)).toBe(true);
    for (const input of Object.values(reports)) {
      expect(() => prepareEvent(state, input)).toThrow(
        expect.objectContaining({ code: 'HW_ERR_JOB_FINISHED' }),
      );
    }
  });

  it('folds only deleted and children into a terminal job', () => {
    const done = report(running(), reports.completed, 900);
    expect(codeOf(() => fold(done, 'progress', { percent: 1 }, 1000))).toBe('HW_ERR_JOB_FINISHED');
    expect(codeOf(() => fold(done, 'cancel_requested', {}, 1000))).toBe('HW_ERR_JOB_FINISHED');
    const deleted = fold(done, 'deleted', {}, 1000);
    expect(deleted).toEqual({ ...done, seq: done.seq + 1, updatedAt: at(1000) });
    const summary = { total: 2, completed: 1, failed: 1, cancelled: 0, percentSum: 200 };
    const withChildren = fold(done, 'children', summary, 1100);
    expect(withChildren).toEqual({ ...done, children: summary, seq: done.seq + 1, updatedAt: at(1100) });
  });

  it('refuses a kind a worker cannot report', () => {
    const input = { kind: 'cancel_requested' } as unknown as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_MESSAGE');
  });

  it('isTerminal', () => {
    expect(
      ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'].map((s) => isTerminal(s as never)),
    ).toEqual([false, false, false, true, true, true]);
  });
});

describe('control', () => {
  it('cancels a queued job at once', () => {
    const state = create();
    expect(prepareControl(state, 'cancel', 'not needed', 'bob')).toEqual({
      kind: 'cancelled',
      data: { reason: 'not needed', by: 'bob' },
    });
    const cancelled = control(state, 'cancel', 3000);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.finishedAt).toBe(at(3000));
    expect(cancelled.startedAt).toBeNull();
  });

  it('requests cancel of a running job once, and clears the request when the job ends', () => {
    const state = running();
    expect(prepareControl(state, 'cancel', undefined, 'bob')).toEqual({
      kind: 'cancel_requested',
      data: { by: 'bob' },
    });
    expect(prepareControl(state, 'cancel', 'why', 'bob')).toEqual({
      kind: 'cancel_requested',
      data: { reason: 'why', by: 'bob' },
    });
    const requested = control(state, 'cancel');
    expect(requested.status).toBe('running');
    expect(requested.control).toEqual({ cancelRequested: true, paused: false });
    expect(prepareControl(requested, 'cancel', undefined, 'bob')).toBeNull();
    const ended = report(requested, reports.cancelled, 2000);
    expect(ended.control.cancelRequested).toBe(false);
  });

  it('requests cancel of a paused job from its worker', () => {
    expect(prepareControl(paused(), 'cancel', undefined, 'bob')?.kind).toBe('cancel_requested');
  });

  it('requests pause and resume, each once', () => {
    let state = running();
    expect(prepareControl(state, 'resume', undefined, 'bob')).toBeNull();
    expect(prepareControl(state, 'pause', 'lunch', 'bob')).toEqual({
      kind: 'pause_requested',
      data: { reason: 'lunch', by: 'bob' },
    });
    state = control(state, 'pause');
    expect(state.status).toBe('running');
    expect(state.control.paused).toBe(true);
    expect(prepareControl(state, 'pause', undefined, 'bob')).toBeNull();

    state = report(state, reports.paused, 1100);
    expect(state.status).toBe('paused');
    expect(prepareControl(state, 'pause', undefined, 'bob')).toBeNull();

    expect(prepareControl(state, 'resume', undefined, 'bob')).toEqual({
      kind: 'resume_requested',
      data: { by: 'bob' },
    });
    state = control(state, 'resume', 1200);
    expect(state.status).toBe('paused');
    expect(state.control.paused).toBe(false);

    state = report(state, reports.resumed, 1300);
    expect(state.status).toBe('running');
    expect(state.control.paused).toBe(false);
  });

  it("does not let a worker's late pause acknowledgement undo a resume", () => {
    let state = control(running(), 'pause', 600);
    state = control(state, 'resume', 700);
    state = report(state, reports.paused, 800);
    expect(state.status).toBe('paused');
    expect(state.control.paused).toBe(false);
  });

  it('lets a user resume a job its worker paused on its own', () => {
    const state = paused();
    expect(state.control.paused).toBe(false);
    expect(prepareControl(state, 'resume', undefined, 'bob')?.kind).toBe('resume_requested');
    expect(report(state, reports.resumed, 900).control.paused).toBe(false);
  });

  it('clears both control flags when the job ends', () => {
    const state = control(control(running(), 'pause', 600), 'cancel', 700);
    expect(state.control).toEqual({ cancelRequested: true, paused: true });
    expect(report(state, reports.failed, 800).control).toEqual({ cancelRequested: false, paused: false });
  });

  it.each(['cancel', 'pause', 'resume'] as const)('refuses %s on a finished job', (action) => {
    for (const terminal of ['completed', 'failed', 'cancelled'] as const) {
      const state = report(running(), reports[terminal], 900);
      expect(() => prepareControl(state, action, undefined, 'bob')).toThrow(
        expect.objectContaining({ code: 'HW_ERR_JOB_FINISHED' }),
      );
    }
  });
});

describe('progress', () => {
  it.each([-1, 100.01, Number.NaN, Number.POSITIVE_INFINITY, '50'])('refuses percent %s', (percent) => {
    const input = { kind: 'progress', percent } as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_VALUE');
  });

  it('accepts the bounds 0 and 100', () => {
    expect(report(running(), { kind: 'progress', percent: 0 }).progress.percent).toBe(0);
    expect(report(running(), { kind: 'progress', percent: 100 }).progress.percent).toBe(100);
  });

  it.each([
    ['a negative current', { current: -1, total: 10 }],
    ['a negative total', { current: 1, total: -10 }],
    ['an infinite current', { current: Number.POSITIVE_INFINITY }],
    ['current above total', { current: 11, total: 10 }],
    ['neither percent nor current', { total: 10, message: 'x' }],
    ['nothing at all', {}],
  ])('refuses %s', (_, fields) => {
    const input = { kind: 'progress', ...fields } as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_VALUE');
  });

  it('computes the percent from counts and stores it in the event', () => {
    const state = running();
    expect(
      prepareEvent(state, { kind: 'progress', current: 1, total: 3, unit: 'videos', key: 'k1' }),
    ).toEqual({
      kind: 'progress',
      data: { percent: 33.33, current: 1, total: 3, unit: 'videos' },
    });
    const next = report(state, { kind: 'progress', current: 1, total: 3, unit: 'videos' });
    expect(next.progress).toEqual({ percent: 33.33, current: 1, total: 3, unit: 'videos' });
  });

  it('counts an empty total as 0%', () => {
    expect(report(running(), { kind: 'progress', current: 0, total: 0 }).progress.percent).toBe(0);
  });

  it('prefers a given percent over counts', () => {
    expect(report(running(), { kind: 'progress', percent: 70, current: 1, total: 10 }).progress.percent).toBe(
      70,
    );
  });

  it('rounds percents to 2 decimals', () => {
    expect(report(running(), { kind: 'progress', percent: 12.34567 }).progress.percent).toBe(12.35);
  });

  it('keeps total and unit across reports, and checks current against the kept total', () => {
    let state = report(running(), { kind: 'progress', current: 10, total: 200, unit: 'MB' }, 1000);
    state = report(state, { kind: 'progress', current: 50 }, 2000);
    expect(state.progress).toEqual({ percent: 25, current: 50, total: 200, unit: 'MB' });
    expect(codeOf(() => prepareEvent(state, { kind: 'progress', current: 201 }))).toBe(
      'HW_ERR_INVALID_VALUE',
    );
    // A new unit does not inherit the old total.
    const other = report(state, { kind: 'progress', current: 500, unit: 'frames' }, 3000);
    expect(other.progress).toEqual({ percent: 25, current: 500, unit: 'frames' });
  });

  it('keeps the percent for a count of unknown extent', () => {
    let state = report(running(), { kind: 'progress', percent: 40 }, 1000);
    state = report(state, { kind: 'progress', current: 123, unit: 'rows' }, 2000);
    expect(state.progress).toEqual({ percent: 40, current: 123, unit: 'rows' });
  });

  it('accepts a lower percent as reported without a plan', () => {
    let state = report(running(), { kind: 'progress', percent: 60 }, 1000);
    state = report(state, { kind: 'progress', percent: 20 }, 2000);
    expect(state.progress.percent).toBe(20);
  });

  it('updates the message from progress; log changes nothing else', () => {
    let state = report(running(), { kind: 'progress', percent: 10, message: 'working' }, 1000);
    expect(state.message).toBe('working');
    state = report(state, { kind: 'progress', percent: 20 }, 2000);
    expect(state.message).toBe('working');
    const logged = report(state, { kind: 'log', message: 'noise', level: 'warn' }, 3000);
    // Only the ETA moves with the time that passed.
    expect(logged).toEqual({ ...state, seq: state.seq + 1, updatedAt: at(3000), eta: logged.eta });
  });

  it('normalizes a log event and refuses an unknown level', () => {
    expect(prepareEvent(running(), { kind: 'log', message: 'm' })).toEqual({
      kind: 'log',
      data: { message: 'm', level: 'info' },
    });
    const input = { kind: 'log', message: 'm', level: 'loud' } as unknown as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_VALUE');
  });
});

describe('stages', () => {
  const plan = [
    { name: 'download', weight: 1 },
    { name: 'transcode', weight: 3 },
    { name: 'upload', weight: 6 },
  ];

  it('weights the overall percent by uneven stage weights', () => {
    let state = create({ stages: plan });
    state = report(state, { kind: 'stage', name: 'download' }, 1000);
    expect(state.stage).toEqual({ name: 'download', index: 0, count: 3, percent: 0 });
    expect(state.progress.percent).toBe(0);
    state = report(state, { kind: 'progress', percent: 50 }, 2000);
    expect(state.progress.percent).toBe(5);
    expect(state.stage?.percent).toBe(50);

    state = report(state, { kind: 'stage', name: 'transcode' }, 3000);
    expect(state.stage).toEqual({ name: 'transcode', index: 1, count: 3, percent: 0 });
    expect(state.progress.percent).toBe(10);
    state = report(state, { kind: 'progress', current: 1, total: 3, unit: 'files' }, 4000);
    // (1 + 3 × 0.3333) / 10 × 100 rounds to 20.
    expect(state.progress.percent).toBe(20);
    expect(state.stage?.percent).toBe(33.33);

    state = report(state, { kind: 'stage', name: 'upload' }, 5000);
    expect(state.progress).toEqual({ percent: 40 });
    state = report(state, { kind: 'progress', percent: 75 }, 6000);
    expect(state.progress.percent).toBe(85);

    state = report(state, { kind: 'completed', result: { url: 'https://x/y' } }, 7000);
    expect(state.progress.percent).toBe(100);
    expect(state.stage?.percent).toBe(100);
    expect(state.result).toEqual({ url: 'https://x/y' });
    expect(state.stages).toEqual([
      { name: 'download', weight: 1, startedAt: at(1000), endedAt: at(3000) },
      { name: 'transcode', weight: 3, startedAt: at(3000), endedAt: at(5000) },
      { name: 'upload', weight: 6, startedAt: at(5000), endedAt: at(7000) },
    ]);
    expect(state.finishedAt).toBe(at(7000));
  });

  it('starts the first stage on progress before any stage event', () => {
    const state = report(create({ stages: plan }), { kind: 'progress', percent: 100 }, 1500);
    expect(state.stage).toEqual({ name: 'download', index: 0, count: 3, percent: 100 });
    expect(state.stages[0]).toEqual({ name: 'download', weight: 1, startedAt: at(1500), endedAt: null });
    expect(state.progress.percent).toBe(10);
  });

  it('refuses a stage that is not in the plan', () => {
    const state = create({ stages: plan });
    expect(codeOf(() => prepareEvent(state, { kind: 'stage', name: 'mux' }))).toBe('HW_ERR_INVALID_VALUE');
    expect(codeOf(() => fold(state, 'stage', { name: 'mux' }, 1000))).toBe('HW_ERR_INVALID_VALUE');
  });

  it('refuses a stage event without a name', () => {
    const input = { kind: 'stage', name: '' } as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_MESSAGE');
  });

  it('never moves the overall percent back within a stage', () => {
    let state = report(create({ stages: plan }), { kind: 'stage', name: 'transcode' }, 1000);
    state = report(state, { kind: 'progress', percent: 60 }, 2000);
    expect(state.progress.percent).toBe(28);
    state = report(state, { kind: 'progress', percent: 30 }, 3000);
    expect(state.stage?.percent).toBe(30);
    expect(state.progress.percent).toBe(28);
    state = report(state, { kind: 'progress', percent: 70 }, 4000);
    expect(state.progress.percent).toBe(31);
  });

  it('moves back to the start of an earlier stage on an explicit stage event', () => {
    let state = report(create({ stages: plan }), { kind: 'stage', name: 'download' }, 1000);
    state = report(state, { kind: 'stage', name: 'transcode' }, 2000);
    state = report(state, { kind: 'progress', percent: 50 }, 3000);
    expect(state.progress.percent).toBe(25);
    state = report(state, { kind: 'stage', name: 'download', message: 'retrying' }, 4000);
    expect(state.progress.percent).toBe(0);
    expect(state.stage).toEqual({ name: 'download', index: 0, count: 3, percent: 0 });
    expect(state.message).toBe('retrying');
    expect(state.stages[0]).toEqual({ name: 'download', weight: 1, startedAt: at(4000), endedAt: null });
    expect(state.stages[1]).toEqual({ name: 'transcode', weight: 3, startedAt: at(2000), endedAt: at(4000) });
  });

  it('restarts the current stage when it is named again', () => {
    let state = report(create({ stages: plan }), { kind: 'stage', name: 'transcode' }, 1000);
    state = report(state, { kind: 'progress', percent: 50 }, 2000);
    state = report(state, { kind: 'stage', name: 'transcode' }, 3000);
    expect(state.progress.percent).toBe(10);
    expect(state.stage?.percent).toBe(0);
    expect(state.stages[1]).toEqual({ name: 'transcode', weight: 3, startedAt: at(3000), endedAt: null });
  });

  it('forgets the counts of the previous stage', () => {
    let state = report(
      create({ stages: plan }),
      { kind: 'progress', current: 5, total: 10, unit: 'MB' },
      1000,
    );
    state = report(state, { kind: 'stage', name: 'transcode' }, 2000);
    expect(state.progress).toEqual({ percent: 10 });
    state = report(state, { kind: 'progress', current: 20 }, 3000);
    expect(state.progress).toEqual({ percent: 10, current: 20 });
  });

  it('records stages without a plan as they come, without weighting the percent', () => {
    let state = report(running(), { kind: 'progress', percent: 30 }, 1000);
    state = report(state, { kind: 'stage', name: 'fetch' }, 2000);
    expect(state.stage).toEqual({ name: 'fetch', index: 0, count: 1, percent: 0 });
    expect(state.progress.percent).toBe(30);
    state = report(state, { kind: 'progress', percent: 45 }, 3000);
    expect(state.progress.percent).toBe(45);
    expect(state.stage?.percent).toBe(45);
    state = report(state, { kind: 'stage', name: 'parse' }, 4000);
    expect(state.stage).toEqual({ name: 'parse', index: 1, count: 2, percent: 0 });
    expect(state.progress.percent).toBe(45);
    state = report(state, { kind: 'stage', name: 'fetch' }, 5000);
    expect(state.stage).toEqual({ name: 'fetch', index: 0, count: 2, percent: 0 });
    expect(state.stages).toEqual([
      { name: 'fetch', weight: 0, startedAt: at(5000), endedAt: null },
      { name: 'parse', weight: 0, startedAt: at(4000), endedAt: at(5000) },
    ]);
    // Any name is welcome without a plan, even after stages were recorded.
    expect(prepareEvent(state, { kind: 'stage', name: 'anything' }).kind).toBe('stage');
  });

  it('records the failing stage, ends it, and keeps the percent', () => {
    let state = report(create({ stages: plan }), { kind: 'stage', name: 'transcode' }, 1000);
    state = report(state, { kind: 'progress', percent: 50 }, 2000);
    expect(prepareEvent(state, { kind: 'failed', error: { message: 'codec' } })).toEqual({
      kind: 'failed',
      data: { error: { code: 'FAILED', message: 'codec', retryable: false, stage: 'transcode' } },
    });
    state = report(
      state,
      { kind: 'failed', error: { code: 'E_CODEC', message: 'codec', retryable: true } },
      3000,
    );
    expect(state.status).toBe('failed');
    expect(state.error).toEqual({ code: 'E_CODEC', message: 'codec', retryable: true, stage: 'transcode' });
    expect(state.progress.percent).toBe(25);
    expect(state.stages[1].endedAt).toBe(at(3000));
    expect(state.finishedAt).toBe(at(3000));
    expect(state.eta).toBeNull();
  });

  it('keeps the percent on cancel and has no failing stage without one', () => {
    let state = report(running(), { kind: 'progress', percent: 42 }, 1000);
    expect(prepareEvent(state, reports.failed)).toMatchObject({ data: { error: { stage: null } } });
    state = report(state, { kind: 'cancelled', reason: 'user' }, 2000);
    expect(state.status).toBe('cancelled');
    expect(state.progress.percent).toBe(42);
    expect(state.finishedAt).toBe(at(2000));
  });

  it('defaults the result of a completed job to null', () => {
    expect(prepareEvent(running(), reports.completed)).toEqual({ kind: 'completed', data: { result: null } });
    expect(report(running(), reports.completed).result).toBeNull();
  });
});

describe('metadata, deleted', () => {
  it('merges metadata shallowly and removes keys set to null', () => {
    let state = create({ metadata: { a: 1, b: { deep: true }, c: 'keep' } });
    state = report(state, { kind: 'metadata', metadata: { a: null, b: { other: 1 }, d: [1] } });
    expect(state.metadata).toEqual({ b: { other: 1 }, c: 'keep', d: [1] });
  });

  it('refuses metadata that is not an object', () => {
    const input = { kind: 'metadata', metadata: 'x' } as unknown as EventInput;
    expect(codeOf(() => prepareEvent(running(), input))).toBe('HW_ERR_INVALID_VALUE');
  });

  it('changes only seq and updatedAt on deleted', () => {
    const state = report(running(), { kind: 'progress', percent: 10 }, 1000);
    expect(fold(state, 'deleted', {}, 5000)).toEqual({ ...state, seq: state.seq + 1, updatedAt: at(5000) });
  });
});

describe('children', () => {
  const summary = (completed: number, percentSum: number, total = 4) => ({
    total,
    completed,
    failed: 0,
    cancelled: 0,
    percentSum,
  });

  it('takes the percent from the summary and starts once a child moves', () => {
    let parent = create({ id: 'batch' });
    parent = fold(parent, 'children', summary(0, 0), 1000);
    expect(parent.status).toBe('queued');
    expect(parent.children).toEqual(summary(0, 0));
    parent = fold(parent, 'children', summary(0, 50), 2000);
    expect(parent.status).toBe('running');
    expect(parent.startedAt).toBe(at(2000));
    expect(parent.progress.percent).toBe(12.5);
    parent = fold(parent, 'children', summary(1, 133.333, 3), 3000);
    expect(parent.progress.percent).toBe(44.44);
    parent = fold(parent, 'children', summary(0, 0, 0), 4000);
    expect(parent.progress.percent).toBe(0);
  });

  it('moves a queued parent to running when a child finishes at once', () => {
    const parent = fold(
      create(),
      'children',
      { total: 2, completed: 0, failed: 0, cancelled: 1, percentSum: 100 },
      1,
    );
    expect(parent.status).toBe('running');
  });

  it('keeps a paused parent paused', () => {
    expect(fold(paused(), 'children', summary(1, 100), 1000).status).toBe('paused');
  });

  it('folds an ETA from the roll-up', () => {
    let parent = create();
    for (let i = 0; i <= 4; i++) parent = fold(parent, 'children', summary(0, i * 40), 1000 + i * 10_000);
    // 10% of the batch every 10 s: 1%/s, 50% left.
    expect(parent.progress.percent).toBe(40);
    // Running since 11 s (the first child's progress): 40% in 30 s, 60% to go.
    expect(parent.eta).toMatchObject({ seconds: 45, rate: 1, unit: 'percent', basis: 'rate' });
  });
});

describe('eta in the state', () => {
  function steady(samples: number, start = 0): JobState {
    let state = running();
    for (let i = 0; i < samples; i++) {
      state = report(state, { kind: 'progress', percent: i * 2 }, start + 1000 + i * 2000);
    }
    return state;
  }

  it('extrapolates the running time once progress is measured, without history', () => {
    expect(report(running(), { kind: 'progress', percent: 0 }, 1000).eta).toBeNull();
    const state = steady(6);
    expect(state.progress.percent).toBe(10);
    // Running since 500 ms: 10.5 s for 10%, so 94.5 s for the remaining 90%.
    expect(state.eta).toMatchObject({ seconds: 95, rate: 1, unit: 'percent', basis: 'rate' });
    expect(state.eta!.low).toBeLessThan(94.5);
    expect(state.eta!.high).toBeGreaterThan(94.5);
    expect(state.eta!.confidence).toBeGreaterThan(0);
    expect(state.eta!.confidence).toBeLessThanOrEqual(0.9);
  });

  it('stands still while paused, and does not count the pause as slow progress', () => {
    let state = steady(6);
    state = report(state, reports.paused, 12_000);
    // 11.5 s of running time for 10%.
    expect(state.eta).toMatchObject({ seconds: 104 });
    state = report(state, reports.resumed, 500_000);
    expect(state.eta).toMatchObject({ seconds: 104 });
    state = report(state, { kind: 'progress', percent: 12 }, 502_000);
    // 13.5 s of running time for 12%.
    expect(state.eta).toMatchObject({ seconds: 99, rate: 1 });
  });

  it('is null once the job has finished', () => {
    expect(report(steady(6), reports.completed, 20_000).eta).toBeNull();
    expect(report(steady(6), reports.cancelled, 20_000).eta).toBeNull();
  });

  it('reports a unit rate when the job counts', () => {
    let state = running();
    for (let i = 0; i < 5; i++) {
      state = report(
        state,
        { kind: 'progress', current: i * 1_000_000, total: 100_000_000, unit: 'bytes' },
        1000 + i * 1000,
      );
    }
    expect(state.eta).toMatchObject({ rate: 1_000_000, unit: 'bytes', basis: 'rate' });
  });

  it('never puts the estimator in what is serialized', () => {
    const state = steady(6);
    expect(JSON.parse(JSON.stringify(state))).not.toHaveProperty('estimator');
    expect(Object.keys(state)).not.toContain('estimator');
  });
});
