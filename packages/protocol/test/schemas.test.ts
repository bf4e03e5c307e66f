import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import { JOB_ID, TERMINAL_STATUSES } from '../src/codes.js';
import { JobId } from '../src/ids.js';
import { EVENT_KINDS, TERMINAL_KINDS } from '../src/job-event.js';
import { JOB_STATUSES, type JobState } from '../src/job-state.js';
import { JobListQuery } from '../src/rest-requests.js';
import { componentSchemas, JobListSchema } from '../src/rest-responses.js';

describe('wire constants', () => {
  it('accepts the same job ids in the schema as in the client-side pattern', () => {
    const schema = TypeCompiler.Compile(JobId);
    const samples = [
      'a',
      'job-1',
      'bullmq:media:42',
      'a.b_c',
      'x'.repeat(128),
      '',
      'x'.repeat(129),
      'a b',
      'a/b',
      'é',
    ];
    for (const id of samples) expect(schema.Check(id), id).toBe(JOB_ID.test(id));
  });

  it('derives the terminal kinds from the terminal statuses', () => {
    for (const status of TERMINAL_STATUSES) {
      expect(JOB_STATUSES).toContain(status);
      expect(EVENT_KINDS).toContain(status);
      expect(TERMINAL_KINDS).toContain(status);
    }
    expect(TERMINAL_KINDS).toEqual([...TERMINAL_STATUSES, 'deleted']);
  });

  it('lists jobs by any status, alone or comma-separated', () => {
    const query = TypeCompiler.Compile(JobListQuery);
    for (const status of JOB_STATUSES) expect(query.Check({ status })).toBe(true);
    expect(query.Check({ status: 'queued,running' })).toBe(true);
    expect(query.Check({ status: 'done' })).toBe(false);
  });
});

describe('response schemas', () => {
  const state: JobState = {
    id: 'job-1',
    owner: 'alice',
    name: 'transcode',
    parent: null,
    status: 'running',
    progress: { percent: 40, current: 4, total: 10, unit: 'videos' },
    stage: { name: 'encode', index: 0, count: 1, percent: 40 },
    stages: [{ name: 'encode', weight: 1, startedAt: '2026-01-01T00:00:00.000Z', endedAt: null }],
    message: null,
    eta: { seconds: 12, confidence: 0.5, rate: 0.5, unit: 'videos' },
    metadata: { source: 's3://bucket/a.mp4' },
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:01.000Z',
    startedAt: '2026-01-01T00:00:00.500Z',
    finishedAt: null,
    seq: 3,
    kind: 'transcode',
  };

  it('resolves references to the components', () => {
    const list = TypeCompiler.Compile(JobListSchema, componentSchemas);
    expect(list.Check({ jobs: [state], next: 'c' })).toBe(true);
    expect(list.Check({ jobs: [{ ...state, status: 'done' }] })).toBe(false);
    expect(list.Check({ jobs: [{ ...state, control: {} }] })).toBe(false);
  });

  it('takes a kind, a stall and an ETA interval, and leaves them optional', () => {
    const list = TypeCompiler.Compile(JobListSchema, componentSchemas);
    const learned: JobState = {
      ...state,
      kind: 'transcode',
      stalled: { since: '2026-01-01T00:00:01.000Z' },
      eta: { ...state.eta!, low: 8, high: 20, basis: 'both' },
    };
    expect(list.Check({ jobs: [learned] })).toBe(true);
    expect(list.Check({ jobs: [{ ...learned, kind: null, stalled: null }] })).toBe(true);
    expect(list.Check({ jobs: [{ ...learned, eta: { ...learned.eta, basis: 'guess' } }] })).toBe(false);
    expect(list.Check({ jobs: [{ ...learned, kind: 'has space' }] })).toBe(false);
  });
});
