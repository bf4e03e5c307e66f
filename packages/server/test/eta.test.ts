/**
 * The estimator with history, on the pure reducer: every time comes from the
 * events (an injected clock), so each expectation is exact.
 */
import type { EventInput, JobEvent, JobState } from '@headway/protocol';
import { describe, expect, it } from 'vitest';
import { estimatorOf } from '../src/state/estimator.js';
import { durationSample, type KindSummary, learn, MAX_STAGES, MAX_WEIGHT } from '../src/state/history.js';
import { createdData, prepareEvent } from '../src/state/prepare.js';
import { reduce } from '../src/state/reducer.js';
import { stallAt, stallDefaults, stallThreshold } from '../src/state/stall.js';

const T0 = Date.parse('2026-03-01T08:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();
const PLAN = [
  { name: 'fetch', weight: 1 },
  { name: 'encode', weight: 1 },
];

/** A job on an injected clock: `at(ms)` sets the time of the next events. */
function job(history: KindSummary | null, stages = PLAN) {
  let now = 0;
  const id = `job-${Math.random()}`;
  let state = reduce(
    null,
    {
      job: id,
      seq: 1,
      kind: 'created',
      data: createdData({ id, owner: 'u', kind: 'k', stages }),
      at: iso(0),
    },
    history,
  );
  const api = {
    at(ms: number) {
      now = ms;
      return api;
    },
    report(input: EventInput) {
      const { kind, data } = prepareEvent(state, input);
      state = reduce(state, { job: id, seq: state.seq + 1, kind, data, at: iso(now) } as JobEvent, history);
      return api;
    },
    hub(kind: 'stalled' | 'unstalled' | 'pause_requested', data: object) {
      state = reduce(state, { job: id, seq: state.seq + 1, kind, data, at: iso(now) } as JobEvent, history);
      return api;
    },
    get state(): JobState {
      return state;
    },
  };
  return api;
}

/** Runs a job whose fetch takes `fetchS` and encode `encodeS` seconds, reporting every second. */
function finished(history: KindSummary | null, fetchS: number, encodeS: number): JobState {
  const j = job(history).report({ kind: 'stage', name: 'fetch' });
  for (let s = 1; s <= fetchS; s++) j.at(s * 1000).report({ kind: 'progress', percent: (s / fetchS) * 100 });
  j.report({ kind: 'stage', name: 'encode' });
  for (let s = 1; s <= encodeS; s++) {
    j.at((fetchS + s) * 1000).report({ kind: 'progress', percent: (s / encodeS) * 100 });
  }
  return j.report({ kind: 'completed' }).state;
}

function historyOf(jobs: [number, number][]): KindSummary {
  let summary: KindSummary | null = null;
  for (const [f, e] of jobs) summary = learn(summary, durationSample(estimatorOf(finished(summary, f, e)))!);
  return summary!;
}

describe('learning from completed jobs', () => {
  it('records running time per stage, without the time queued or paused', () => {
    const j = job(null).at(5000).report({ kind: 'stage', name: 'fetch' });
    j.at(7000).report({ kind: 'progress', percent: 50 }).report({ kind: 'paused' });
    j.at(60_000).report({ kind: 'resumed' }).at(62_000).report({ kind: 'stage', name: 'encode' });
    j.at(70_000).report({ kind: 'completed' });
    expect(durationSample(estimatorOf(j.state))).toMatchObject({
      totalMs: 12_000,
      stages: [
        { name: 'fetch', ms: 4000 },
        { name: 'encode', ms: 8000 },
      ],
    });
  });

  it('keeps a summary bounded: statistics weigh at most MAX_WEIGHT jobs, at most MAX_STAGES names', () => {
    let summary: KindSummary | null = null;
    for (let i = 0; i < MAX_WEIGHT + 30; i++) {
      const stages = Array.from({ length: 10 }, (_, k) => ({ name: `s${i}-${k}`, ms: 100 }));
      summary = learn(summary, { totalMs: 1000, stages });
    }
    expect(summary!.jobs).toBe(MAX_WEIGHT + 30);
    expect(summary!.total.n).toBe(MAX_WEIGHT);
    expect(Object.keys(summary!.stages)).toHaveLength(MAX_STAGES);
    expect(JSON.stringify(summary).length).toBeLessThan(64 * 1024);
  });

  it('follows a kind that gets slower', () => {
    let summary: KindSummary | null = null;
    for (let i = 0; i < 200; i++)
      summary = learn(summary, { totalMs: i < 100 ? 10_000 : 40_000, stages: [] });
    // Most of the way from 10 s to 40 s after as many jobs again.
    expect(Math.exp(summary!.total.mean)).toBeGreaterThan(30_000);
  });
});

describe('the estimate from history', () => {
  // Fetch takes 10 % of the job, encode 90 %, though the plan weighs them equally.
  const history = historyOf([
    [4, 36],
    [4, 36],
    [4, 36],
  ]);

  it('is there from creation, with the job running time learned', () => {
    const eta = job(history).state.eta;
    expect(eta).toMatchObject({ seconds: 40, basis: 'history' });
    expect(eta!.low).toBeLessThan(40);
    expect(eta!.high).toBeGreaterThan(40);
    expect(eta!.confidence).toBeGreaterThan(0.5);
    expect(eta!.confidence).toBeLessThanOrEqual(0.9);
  });

  it('corrects stage weights that disagree with measured durations: 50 % done is not half way', () => {
    const j = job(history).report({ kind: 'stage', name: 'fetch' });
    for (let s = 1; s <= 4; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 25 });
    j.report({ kind: 'stage', name: 'encode' });
    expect(j.state.progress.percent).toBe(50);
    // Linear extrapolation would say 4 s; the encode stage still takes 36 s.
    expect(j.state.eta).toMatchObject({ seconds: 36, basis: 'history' });
  });

  it('blends the live pace of the current stage with the history', () => {
    const j = job(history).report({ kind: 'stage', name: 'fetch' });
    for (let s = 1; s <= 4; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 25 });
    j.report({ kind: 'stage', name: 'encode' });
    // Encoding runs twice as slow as usual: 40 % in 28.8 s.
    j.at(4000 + 28_800).report({ kind: 'progress', percent: 40 });
    const eta = j.state.eta!;
    expect(eta.basis).toBe('both');
    // Between the history (21.6 s left) and the live pace (43.2 s left).
    expect(eta.seconds).toBeGreaterThan(25);
    expect(eta.seconds).toBeLessThan(43);
  });

  it('scales the stages to come with what the finished ones took, for jobs of varied sizes', () => {
    const sized = historyOf([
      [2, 18],
      [4, 36],
      [8, 72],
      [3, 27],
      [6, 54],
      [5, 45],
    ]);
    const big = job(sized).report({ kind: 'stage', name: 'fetch' });
    for (let s = 1; s <= 8; s++) big.at(s * 1000).report({ kind: 'progress', percent: s * 12.5 });
    big.report({ kind: 'stage', name: 'encode' });
    // An 8 s fetch means a big job: about 72 s of encoding, not the average 42.
    expect(big.state.eta!.seconds).toBeGreaterThan(60);
    expect(big.state.eta!.seconds).toBeLessThan(85);
  });

  it('learns how far a stage’s live pace can be trusted, and trusts a steady kind’s more', () => {
    // The same durations (fetch 4 s, encode 36 s); in the bumpy kind, encode does
    // its first half in 4 s and its second in 32 s, so its pace at a quarter lies.
    const bumpyJob = (summary: KindSummary | null) => {
      const j = job(summary).report({ kind: 'stage', name: 'fetch' });
      for (let s = 1; s <= 4; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 25 });
      j.report({ kind: 'stage', name: 'encode' });
      for (let s = 1; s <= 36; s++) {
        const percent = s <= 4 ? s * 12.5 : 50 + ((s - 4) / 32) * 50;
        j.at((4 + s) * 1000).report({ kind: 'progress', percent });
      }
      return j.report({ kind: 'completed' }).state;
    };
    let bumpy: KindSummary | null = null;
    for (let i = 0; i < 6; i++) {
      const sample = durationSample(estimatorOf(bumpyJob(bumpy)))!;
      expect(sample.liveError).toBeGreaterThan(0.3);
      bumpy = learn(bumpy, sample);
    }
    const steady = historyOf(Array.from({ length: 6 }, (): [number, number] => [4, 36]));
    expect(durationSample(estimatorOf(finished(null, 4, 36)))!.liveError).toBe(0);
    expect(steady.live!.mean).toBe(0);
    expect(bumpy!.live!.mean).toBeGreaterThan(0.3);
    expect(Math.exp(bumpy!.total.mean)).toBeCloseTo(Math.exp(steady.total.mean), -2);

    // A job of each kind whose encode runs twice as slow as usual: 40 % in 28.8 s.
    const slow = (summary: KindSummary) => {
      const j = job(summary).report({ kind: 'stage', name: 'fetch' });
      for (let s = 1; s <= 4; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 25 });
      j.report({ kind: 'stage', name: 'encode' });
      return j.at(4000 + 28_800).report({ kind: 'progress', percent: 40 }).state.eta!;
    };
    // The live pace says 43.2 s left, the history 21.6 s.
    const trusted = slow(steady);
    const doubted = slow(bumpy!);
    // The steady kind's estimate leans further towards the live pace.
    expect(doubted.seconds).toBeGreaterThan(21);
    expect(trusted.seconds).toBeGreaterThanOrEqual(doubted.seconds + 3);
    expect(trusted.seconds).toBeLessThan(43);
  });

  it('keeps an estimator stored before probes existed working', () => {
    const j = job(history).report({ kind: 'stage', name: 'fetch' });
    j.at(1000).report({ kind: 'progress', percent: 25 });
    const stored = estimatorOf(j.state)!;
    delete stored.probe;
    delete stored.live;
    j.at(2000).report({ kind: 'progress', percent: 50 }).report({ kind: 'stage', name: 'encode' });
    j.at(40_000).report({ kind: 'completed' });
    const sample = durationSample(estimatorOf(j.state))!;
    expect(sample.totalMs).toBe(40_000);
    expect(sample.liveError).toBeTypeOf('number');
  });

  it('stands still while paused', () => {
    const j = job(history).report({ kind: 'stage', name: 'fetch' });
    j.at(2000).report({ kind: 'progress', percent: 50 }).report({ kind: 'paused' });
    const paused = j.state.eta;
    j.at(600_000).hub('pause_requested', { by: 'u' });
    expect(j.state.status).toBe('paused');
    expect(j.state.eta).toEqual(paused);
  });

  it('lowers the confidence of a stalled job, and restores it once it reports', () => {
    const j = job(history).report({ kind: 'stage', name: 'fetch' });
    j.at(1000).report({ kind: 'progress', percent: 25 });
    const before = j.state.eta!.confidence;
    j.at(4000).hub('stalled', { since: iso(1000), thresholdMs: 3000 });
    expect(j.state.stalled).toEqual({ since: iso(1000) });
    expect(j.state.eta!.confidence).toBeLessThan(before);
    j.at(4500).hub('unstalled', {}).report({ kind: 'progress', percent: 60 });
    expect(j.state.stalled).toBeNull();
    expect(j.state.eta!.confidence).toBeGreaterThan(0.5);
  });
});

describe('the estimate from the job’s own pace (no history)', () => {
  /** A job without a plan reporting 0 % (it starts running) and then `percents`, one a second. */
  function unplanned(percents: number[]): JobState {
    const j = job(null, []);
    for (const [s, percent] of [0, ...percents].entries())
      j.at(s * 1000).report({ kind: 'progress', percent });
    return j.state;
  }
  const steady = () => unplanned([5, 10, 15, 20, 25, 30, 35, 40]);
  /** A stage plan of these weights, its stages named a, b, c… */
  const plan = (...weights: number[]) => weights.map((weight, i) => ({ name: 'abcdefgh'[i]!, weight }));

  it('extrapolates the overall percent over the running time, with basis "rate"', () => {
    const state = steady();
    // 40 % in 8 s: 12 s left.
    expect(state.stages).toEqual([]);
    expect(state.eta).toMatchObject({ seconds: 12, basis: 'rate' });
    expect(state.eta!.low).toBeLessThan(12);
    expect(state.eta!.high).toBeGreaterThan(12);
  });

  it('is less sure of a job whose pace changed than of one that kept it', () => {
    const slowed = unplanned([9, 18, 27, 36, 37, 38, 39, 40]);
    expect(slowed.progress.percent).toBe(40);
    expect(slowed.eta!.seconds).toBe(12);
    // Both are sure enough for the highest confidence: the slowed job's interval is the wider.
    const width = (s: JobState) => (s.eta?.high ?? 0) - (s.eta?.low ?? 0);
    expect(width(slowed)).toBeGreaterThan(width(steady()));
  });

  it('extrapolates the current stage from its own pace as well as the job’s average', () => {
    // Equal weights; stage a took 2 s, b runs 5× slower: 50 % of it in 5 s.
    const j = job(null, plan(1, 1, 1)).report({ kind: 'stage', name: 'a' });
    for (let s = 1; s <= 2; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 50 });
    j.report({ kind: 'stage', name: 'b' });
    for (let s = 1; s <= 5; s++) j.at((2 + s) * 1000).report({ kind: 'progress', percent: s * 10 });
    const state = j.state;
    expect(state.progress.percent).toBe(50);
    // The overall percent alone says 7 s (50 % in 7 s): 2.3 s of b at the job's
    // average pace. b's own pace says 5 s of it, and the estimate leans that way.
    const eta = state.eta!;
    expect(eta.basis).toBe('rate');
    expect(eta.seconds).toBeGreaterThanOrEqual(8);
    expect(eta.seconds).toBeLessThanOrEqual(10);
    expect(eta.low).toBeLessThan(eta.seconds);
    expect(eta.high).toBeGreaterThan(eta.seconds);
  });

  it('gives the stages to come the typical pace of the stages done, not the slowest one’s share', () => {
    // Four equal weights: a took 2 s, b 18 s; c has just begun.
    const j = job(null, plan(1, 1, 1, 1)).report({ kind: 'stage', name: 'a' });
    j.at(1000).report({ kind: 'progress', percent: 50 }).at(2000).report({ kind: 'progress', percent: 100 });
    j.report({ kind: 'stage', name: 'b' });
    for (let s = 1; s <= 3; s++) j.at(2000 + s * 6000).report({ kind: 'progress', percent: (s / 3) * 100 });
    j.report({ kind: 'stage', name: 'c' });
    expect(j.state.progress.percent).toBe(50);
    // c, not begun, at the job's average pace: 10 s. d at the geometric mean of
    // a's and b's paces, √(2 × 18) = 6 s, where the average pace (or the
    // overall percent alone, 20 s for both) would say 10 s.
    expect(j.state.eta).toMatchObject({ seconds: 16, basis: 'rate' });
  });

  it('is less sure while no finished stage has borne out the weights of the stages to come', () => {
    // Stage a is a quarter of the plan, b another quarter: 5 % a second throughout, 40 % at 8 s.
    const j = job(null, plan(1, 1, 2)).report({ kind: 'stage', name: 'a' });
    for (let s = 1; s <= 5; s++) j.at(s * 1000).report({ kind: 'progress', percent: s * 20 });
    j.report({ kind: 'stage', name: 'b' });
    for (let s = 6; s <= 8; s++) j.at(s * 1000).report({ kind: 'progress', percent: (s - 5) * 20 });
    const planned = j.state;
    expect(planned.progress.percent).toBe(40);
    expect(planned.eta).toMatchObject({ seconds: 12, basis: 'rate' });
    expect(planned.eta!.confidence).toBeLessThan(steady().eta!.confidence);
  });
});

describe('stall thresholds', () => {
  it('uses the job’s own gap once it has three, the kind’s before, the default without either', () => {
    const quiet = job(null).at(1000).report({ kind: 'progress', percent: 1 });
    expect(stallThreshold(quiet.state, null, stallDefaults)).toBe(60_000);
    const history = historyOf([
      [2, 2],
      [2, 2],
    ]);
    // The kind reports every second.
    expect(stallThreshold(quiet.state, history, stallDefaults)).toBe(10_000);
    const chatty = job(null);
    for (let i = 1; i <= 5; i++) chatty.at(i * 100).report({ kind: 'progress', percent: i });
    expect(stallThreshold(chatty.state, history, stallDefaults)).toBe(3000);
    expect(stallThreshold(chatty.state, history, { ...stallDefaults, minMs: 500 })).toBe(1000);
    expect(stallAt(chatty.state, null, stallDefaults, T0 + 500 + 2999)).toBeNull();
    expect(stallAt(chatty.state, null, stallDefaults, T0 + 500 + 3000)).toEqual({
      since: iso(500),
      thresholdMs: 3000,
    });
  });
});
