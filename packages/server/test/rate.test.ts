import { describe, expect, it } from 'vitest';
import {
  foldSample,
  MIN_SAMPLE_INTERVAL_MS,
  type RateSample,
  resetUnitBasis,
  restartClock,
} from '../src/state/rate.js';

const T0 = Date.parse('2025-03-01T12:00:00.000Z');

/** Fold `[ms after T0, percent, current?]` samples in order. */
function run(points: [number, number, number?][], start: RateSample | null = null): RateSample {
  let est = start;
  for (const [ms, percent, current] of points) {
    est = foldSample(est, { at: T0 + ms, percent, current: current ?? null });
  }
  if (est === null) throw new Error('no samples');
  return est;
}

/** Samples every `stepMs` from 0 for `count` samples at `ratePerS` percent per second. */
function steady(count: number, ratePerS: number, stepMs = 1000, from: [number, number] = [0, 0]) {
  const points: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    points.push([from[0] + i * stepMs, from[1] + (ratePerS * i * stepMs) / 1000]);
  }
  return points;
}

describe('foldSample', () => {
  it('starts from one sample without a rate', () => {
    const est = foldSample(null, { at: T0, percent: 5, current: 10 });
    expect(est).toEqual({
      at: T0,
      percent: 5,
      current: 10,
      percentRate: 0,
      unitRate: null,
      jitter: 0,
      samples: 1,
    });
  });

  it('takes the first measured rate as is', () => {
    const est = run([
      [0, 0],
      [2000, 4],
    ]);
    expect(est.percentRate).toBe(2);
    expect(est.samples).toBe(2);
  });

  it('converges on a constant rate', () => {
    const est = run(steady(30, 0.5));
    expect(est.percentRate).toBeCloseTo(0.5, 9);
    expect(est.jitter).toBe(0);
    expect(est.samples).toBe(30);
  });

  it('follows a change of rate with a time-based factor, whatever the sampling interval', () => {
    const fast = steady(11, 2);
    const fine = run([...fast, ...steady(31, 1, 1000, [10_000, 20]).slice(1)]);
    const coarse = run([...fast, ...steady(7, 1, 5000, [10_000, 20]).slice(1)]);
    // Starting from exactly 2%/s, after 30 s at 1%/s the smoothed rate is 1 + e^(-30/10).
    expect(fine.percentRate).toBeCloseTo(1 + Math.exp(-3), 9);
    expect(coarse.percentRate).toBeCloseTo(1 + Math.exp(-3), 9);
    const late = run(steady(41, 1, 1000, [40_000, 50]).slice(1), fine);
    expect(late.percentRate).toBeCloseTo(1, 2);
  });

  it('merges samples closer than 250 ms into the next, measured from the older point', () => {
    const two = run([
      [0, 0],
      [1000, 1],
    ]);
    const close = foldSample(two, { at: T0 + 1000 + MIN_SAMPLE_INTERVAL_MS - 1, percent: 5, current: null });
    expect(close).toBe(two);
    const next = foldSample(close, { at: T0 + 2000, percent: 6, current: null });
    // 5% in the 1 s since the older point, not 1% in 0.75 s.
    expect(next.samples).toBe(3);
    expect(next.at).toBe(T0 + 2000);
    expect(next.percentRate).toBeCloseTo(1 + (1 - Math.exp(-0.1)) * (5 - 1), 9);
    // A sample exactly at the limit counts.
    expect(
      foldSample(two, { at: T0 + 1000 + MIN_SAMPLE_INTERVAL_MS, percent: 1.25, current: null }).samples,
    ).toBe(3);
  });

  it('ignores a sample from the past', () => {
    const two = run([
      [0, 0],
      [1000, 1],
    ]);
    expect(foldSample(two, { at: T0 + 500, percent: 2, current: null })).toBe(two);
  });

  it('measures the jitter of a bumpy job', () => {
    const smooth = run(steady(12, 2));
    const bumpy: [number, number][] = [];
    let percent = 0;
    for (let i = 0; i < 12; i++) {
      bumpy.push([i * 1000, percent]);
      percent += i % 2 === 0 ? 1 : 3;
    }
    const jittery = run(bumpy);
    expect(jittery.samples).toBe(smooth.samples);
    expect(smooth.jitter).toBe(0);
    expect(jittery.jitter).toBeGreaterThan(0.1);
  });

  it('measures units per second when the job counts', () => {
    const est = run([
      [0, 0, 0],
      [1000, 1, 500],
      [2000, 2, 1000],
    ]);
    expect(est.unitRate).toBe(500);
  });

  it('starts the unit rate over when the unit or total changes', () => {
    const counted = run([
      [0, 0, 0],
      [1000, 1, 500],
    ]);
    const reset = foldSample(counted, { at: T0 + 2000, percent: 2, current: 3 }, true);
    expect(reset.unitRate).toBeNull();
    expect(reset.current).toBe(3);
    expect(reset.percentRate).toBe(1);
    const again = foldSample(reset, { at: T0 + 3000, percent: 3, current: 13 });
    expect(again.unitRate).toBe(10);
    // A reset on a sample too close to measure still drops the old basis.
    const close = foldSample(counted, { at: T0 + 1100, percent: 1, current: 7 }, true);
    expect(close).toMatchObject({ at: T0 + 1000, current: null, unitRate: null, samples: 2 });
    // Percent-only reports drop the unit rate.
    expect(foldSample(counted, { at: T0 + 2000, percent: 2, current: null }).unitRate).toBeNull();
  });

  it('moves the sample point without changing the rates when progress goes backwards', () => {
    const est = run([
      [0, 0, 0],
      [1000, 10, 100],
      [2000, 20, 200],
    ]);
    const back = foldSample(est, { at: T0 + 3000, percent: 5, current: 50 });
    expect(back).toEqual({ ...est, at: T0 + 3000, percent: 5, current: 50 });
    const forward = foldSample(back, { at: T0 + 4000, percent: 15, current: 150 });
    expect(forward.percentRate).toBeCloseTo(10, 9);
    expect(forward.unitRate).toBeCloseTo(100, 9);
    expect(forward.samples).toBe(4);
  });
});

describe('restartClock and resetUnitBasis', () => {
  const est = run([
    [0, 0, 0],
    [1000, 1, 10],
  ]);

  it('moves the clock forward only', () => {
    expect(restartClock(est, T0 + 60_000)).toEqual({ ...est, at: T0 + 60_000 });
    expect(restartClock(est, T0)).toBe(est);
    expect(restartClock(null, T0)).toBeNull();
  });

  it('does not count the restarted time as slow progress', () => {
    const resumed = restartClock(est, T0 + 60_000);
    const next = foldSample(resumed, { at: T0 + 61_000, percent: 2, current: 20 });
    expect(next.percentRate).toBeCloseTo(1, 9);
    expect(next.unitRate).toBeCloseTo(10, 9);
  });

  it('forgets the count basis but keeps the percent rate', () => {
    expect(resetUnitBasis(est)).toEqual({ ...est, current: null, unitRate: null });
    expect(resetUnitBasis(null)).toBeNull();
  });
});
