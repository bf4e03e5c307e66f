/**
 * What can be checked without a browser: server rendering (no connection is
 * made, the server snapshot is used), the progress bar's accessible markup, the
 * words for time left. Live rendering in a browser: browser.test.ts.
 */
import type { JobState } from '@headway/client';
import { createClient } from '@headway/client';
import { renderToStaticMarkup, renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import {
  describeJob,
  formatEta,
  formatEtaRange,
  formatTimeLeft,
  HeadwayProvider,
  JobList,
  ProgressBar,
  useConnection,
  useJob,
  useJobs,
} from '../src/index.js';

function job(patch: Partial<JobState> = {}): JobState {
  const at = '2025-01-01T00:00:00.000Z';
  return {
    id: 'video-1',
    owner: 'alice',
    name: 'Transcode video-1.mp4',
    parent: null,
    status: 'running',
    progress: { percent: 42.7 },
    stage: { name: 'transcode', index: 1, count: 4, percent: 10 },
    stages: [],
    message: null,
    eta: { seconds: 150, confidence: 0.8, rate: 0.3, unit: 'percent' },
    metadata: {},
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: at,
    updatedAt: at,
    startedAt: at,
    finishedAt: null,
    seq: 7,
    kind: null,
    ...patch,
  };
}

function attr(html: string, name: string): string | null {
  return new RegExp(`${name}="([^"]*)"`).exec(html)?.[1] ?? null;
}

describe('formatEta', () => {
  it.each([
    [3, 'a few seconds left'],
    [45, 'less than a minute left'],
    [61, 'about 1 minute left'],
    [150, 'about 3 minutes left'],
    [3600, 'about 1 hour left'],
    [4800, 'about 1 hour 20 minutes left'],
    [7170, 'about 2 hours left'],
    [3 * 86400, 'about 3 days left'],
    [-1, ''],
    [Number.NaN, ''],
  ])('%s s → %j', (seconds, words) => {
    expect(formatEta(seconds)).toBe(words);
  });

  it('leaves out "left" where a label already says it', () => {
    expect(formatEta(45, { left: false })).toBe('less than a minute');
    expect(formatEta(4800, { left: false })).toBe('about 1 hour 20 minutes');
    expect(formatEta(-1, { left: false })).toBe('');
  });
});

describe('formatEtaRange', () => {
  it.each([
    [{ seconds: 150 }, 'about 3 minutes left'],
    [{ seconds: 170, low: 120, high: 240 }, 'about 2–4 min left'],
    [{ seconds: 40, low: 20, high: 50 }, 'less than a minute left'],
    [{ seconds: 80, low: 30, high: 150 }, 'under 3 min left'],
    [{ seconds: 130, low: 125, high: 175 }, 'about 2–3 min left'],
    [{ seconds: 5400, low: 2400, high: 10_800 }, 'about 40 min – 3 h left'],
    [{ seconds: 4 * 86400, low: 3 * 86400, high: 5 * 86400 }, 'about 3–5 days left'],
  ])('%j → %j', (eta, words) => {
    expect(formatEtaRange(eta)).toBe(words);
  });
});

describe('formatTimeLeft', () => {
  const eta = {
    seconds: 170,
    confidence: 0.8,
    rate: 1,
    unit: 'percent',
    low: 120,
    high: 240,
    basis: 'both' as const,
  };

  it('shows the interval while queued, running or paused (standing still)', () => {
    expect(formatTimeLeft(job({ eta, status: 'queued' }))).toBe('about 2–4 min left');
    expect(formatTimeLeft(job({ eta }))).toBe('about 2–4 min left');
    expect(formatTimeLeft(job({ eta, status: 'paused' }))).toBe('about 2–4 min left once resumed');
    expect(formatTimeLeft(job({ eta: null }))).toBe('');
  });

  it('shows a stall instead of the time left', () => {
    const since = Date.parse('2025-01-01T00:00:00.000Z');
    const stalled = job({ eta, stalled: { since: new Date(since).toISOString() } });
    expect(formatTimeLeft(stalled, since + 5 * 60_000)).toBe('stalled: no report for 5 min');
    expect(formatTimeLeft(stalled, since + 20_000)).toBe('stalled: no report for under a minute');
    const html = renderToStaticMarkup(<ProgressBar job={stalled} />);
    expect(attr(html, 'data-stalled')).toBe('true');
    expect(html).toContain('hw-progress__stall');
    expect(attr(html, 'aria-valuetext')).toMatch(
      /^transcode \(2 of 4\), 42%, stalled: no report for \d+ min, running$/,
    );
  });
});

describe('ProgressBar', () => {
  it('renders an accessible progressbar with stage, percent, time left and status', () => {
    const html = renderToStaticMarkup(<ProgressBar job={job()} />);
    expect(attr(html, 'role')).toBe('progressbar');
    expect(attr(html, 'aria-valuemin')).toBe('0');
    expect(attr(html, 'aria-valuemax')).toBe('100');
    expect(attr(html, 'aria-valuenow')).toBe('42');
    expect(attr(html, 'aria-label')).toBe('Transcode video-1.mp4');
    expect(attr(html, 'aria-valuetext')).toBe('transcode (2 of 4), 42%, about 3 minutes left, running');
    expect(html).toContain('width:42.7%');
    expect(html).toContain('var(--hw-progress-running, var(--hw-progress-fill, #2563eb))');
    expect(html).toContain('<span class="hw-progress__status">running</span>');
  });

  it('says how a job ended, with the error of a failure', () => {
    const failed = renderToStaticMarkup(
      <ProgressBar
        job={job({
          status: 'failed',
          eta: null,
          error: { code: 'E', message: 'disk full', retryable: false, stage: 'transcode' },
        })}
      />,
    );
    expect(attr(failed, 'aria-valuetext')).toBe('transcode (2 of 4), 42%, failed: disk full');
    const done = renderToStaticMarkup(
      <ProgressBar job={job({ status: 'completed', eta: null, stage: null })} />,
    );
    expect(attr(done, 'aria-valuenow')).toBe('100');
    expect(attr(done, 'aria-valuetext')).toBe('100%, completed');
    expect(attr(done, 'data-status')).toBe('completed');
  });

  it('is indeterminate while loading or queued without progress', () => {
    const loading = renderToStaticMarkup(<ProgressBar job={null} label="Upload" />);
    expect(attr(loading, 'aria-valuenow')).toBeNull();
    expect(attr(loading, 'aria-valuetext')).toBe('loading');
    expect(attr(loading, 'aria-label')).toBe('Upload');
    const queued = renderToStaticMarkup(
      <ProgressBar job={job({ status: 'queued', progress: { percent: 0 }, eta: null, stage: null })} />,
    );
    expect(attr(queued, 'aria-valuenow')).toBeNull();
    expect(describeJob(job({ status: 'queued', progress: { percent: 0 }, eta: null, stage: null }))).toBe(
      '0%, queued',
    );
  });

  it('takes a class name and style, and can hide its details', () => {
    const html = renderToStaticMarkup(
      <ProgressBar job={job()} className="mine" style={{ maxWidth: 200 }} details={false} />,
    );
    expect(attr(html, 'class')).toBe('hw-progress mine');
    expect(html).toContain('max-width:200px');
    expect(html).not.toContain('hw-progress__details');
  });
});

describe('server rendering', () => {
  function App({ id }: { id: string }) {
    const { job: state, connection } = useJob(id);
    const { jobs } = useJobs({ status: ['running'] });
    const { state: conn } = useConnection();
    return (
      <div>
        <p id="connection">{`${connection}/${conn}/${jobs.length}`}</p>
        <ProgressBar job={state} />
        <JobList />
      </div>
    );
  }

  it('renders the server snapshot and opens no connection', () => {
    let fetched = 0;
    const client = createClient({
      url: 'http://127.0.0.1:1',
      token: 'token',
      fetch: (async () => {
        fetched++;
        throw new Error('no network during server rendering');
      }) as typeof fetch,
      transports: ['poll'],
    });
    const html = renderToString(
      <HeadwayProvider client={client}>
        <App id="video-1" />
      </HeadwayProvider>,
    );
    expect(html).toContain('idle/idle/0');
    expect(html).toContain('aria-valuetext="loading"');
    expect(html).toContain('Loading…');
    expect(client.state).toBe('idle');
    expect(fetched).toBe(0);
  });

  it('refuses hooks outside a provider with a stable code', () => {
    expect(() => renderToString(<App id="x" />)).toThrow(
      expect.objectContaining({ code: 'HW_ERR_NO_PROVIDER' }),
    );
  });
});
