/** How the seed dialects carry the ETA, the interval's confidence and stalls. */
import type { JobState } from '@headway/protocol';
import { runningJob } from '@headway/test-helpers';
import { describe, expect, it } from 'vitest';
import { etaSeconds, UNSHOWN_KINDS } from '../../src/transports/dialects/fields.js';
import { timeEstimatePayload } from '../../src/transports/dialects/task-subscribe.js';
import { userProgressMessage } from '../../src/transports/dialects/user-progress.js';

const eta = {
  seconds: 150.4,
  confidence: 0.8,
  rate: 0.5,
  unit: 'percent',
  low: 100,
  high: 210,
  basis: 'both' as const,
};

function job(overrides: Partial<JobState>): JobState {
  return runningJob('eta-job', 3, overrides);
}

describe('seed dialects and the ETA', () => {
  it('user-progress: eta_seconds is the middle of the interval, whole seconds', () => {
    expect(etaSeconds(job({ eta }))).toBe(150);
    expect(userProgressMessage(job({ eta })).eta_seconds).toBe(150);
    expect(etaSeconds(job({ eta: null }))).toBeNull();
  });

  it('user-progress: a queued job of a known kind already has eta_seconds', () => {
    const queued = job({ status: 'queued', eta: { ...eta, basis: 'history' } });
    expect(userProgressMessage(queued).eta_seconds).toBe(150);
  });

  it('task-subscribe: estimatedTimeRemaining with the confidence of the interval', () => {
    expect(timeEstimatePayload(job({ eta }))).toEqual({ estimatedTimeRemaining: 150, confidence: 0.8 });
    expect(timeEstimatePayload(job({ eta: null }))).toBeNull();
  });

  it('task-subscribe: a stalled job sends its lowered confidence', () => {
    const stalled = job({
      eta: { ...eta, confidence: 0.35 },
      stalled: { since: '2026-01-01T00:00:00.000Z' },
    });
    expect(timeEstimatePayload(stalled)).toEqual({ estimatedTimeRemaining: 150, confidence: 0.35 });
  });

  it('no seed message stands for a stall of its own', () => {
    expect(UNSHOWN_KINDS.has('stalled')).toBe(true);
    expect(UNSHOWN_KINDS.has('unstalled')).toBe(true);
  });
});
