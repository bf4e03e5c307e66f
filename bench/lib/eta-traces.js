/**
 * The job traces of the ETA accuracy benchmark (bench/eta.js): seeded, so every
 * run replays the same corpus. A trace is the list of reports a worker makes,
 * with times in ms from the job's first report.
 *
 * Each kind has stages of very different speeds (and stage weights that do not
 * match them), a per-job size drawn log-uniformly over 1–10× that scales the
 * stages (some only partly: a fixed cost does not grow with size), noisy rates
 * within a stage (every report's step is drawn at random), and a gap between
 * reports. A trace may carry a stall (a long silence mid-stage, still counted as
 * running time) or a pause, each at a point of the job's work drawn between 20 %
 * and 80 %, or a failure at 60 % of its work.
 */

/** Kinds of the corpus. `history`: 20 finished jobs are learned before the jobs measured. */
export const KINDS = [
  {
    kind: 'transcode',
    history: true,
    gapMs: 300,
    // Weights say the download is 10%; it is 8%, and the upload 35% rather than 10%.
    stages: [
      { name: 'download', weight: 1, ms: 6_000, scale: 1 },
      { name: 'transcode', weight: 8, ms: 40_000, scale: 1 },
      { name: 'upload', weight: 1, ms: 25_000, scale: 1 },
    ],
  },
  {
    kind: 'import',
    history: true,
    gapMs: 1000,
    stages: [
      { name: 'fetch', weight: 1, ms: 20_000, scale: 0.3 },
      { name: 'parse', weight: 1, ms: 5_000, scale: 1 },
      { name: 'validate', weight: 1, ms: 3_000, scale: 1 },
      // Counts rows: its `total` grows with the size of the job.
      { name: 'write', weight: 1, ms: 30_000, scale: 1, unit: 'rows', perSize: 10_000 },
    ],
  },
  {
    kind: 'backup',
    history: true,
    gapMs: 500,
    stages: [
      { name: 'scan', weight: 1, ms: 3_000, scale: 0.5 },
      { name: 'snapshot', weight: 1, ms: 2_000, scale: 0 },
      { name: 'compress', weight: 3, ms: 30_000, scale: 1 },
      { name: 'upload', weight: 3, ms: 50_000, scale: 1 },
      { name: 'verify', weight: 1, ms: 10_000, scale: 1 },
    ],
  },
  {
    kind: 'thumbnail',
    history: false,
    gapMs: 250,
    stages: [
      { name: 'decode', weight: 1, ms: 2_000, scale: 1 },
      { name: 'resize', weight: 1, ms: 15_000, scale: 1 },
      { name: 'encode', weight: 1, ms: 5_000, scale: 1 },
    ],
  },
  {
    kind: 'export',
    history: false,
    gapMs: 1000,
    // No plan: the worker reports the overall percent only.
    plan: false,
    stages: [{ name: 'export', weight: 1, ms: 60_000, scale: 1 }],
  },
];

/** Jobs learned per kind with history, and jobs measured per kind. */
export const HISTORY_JOBS = 20;
export const MEASURED_JOBS = 8;
/** Length of the stall and of the pause in the traces that have one, ms. */
export const STALL_MS = 40_000;
export const PAUSE_MS = 20_000;

/** A small seeded PRNG (mulberry32), so that the corpus is the same on every run. */
export function rng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(random) {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/**
 * One job's trace: `{ kind, plan, events: [{ t, input }], truthMs, outcome }`.
 * `special` is 'stall', 'pause', 'fail' or null; a stall or a pause comes after
 * the first report past `where` (0–1) of the job's work.
 */
export function makeTrace(spec, random, special, where = 0.5) {
  const size = 10 ** random();
  const planned = spec.plan !== false;
  const events = [];
  let t = 0;
  let total = 0;
  const durations = spec.stages.map((s) => {
    const d = s.ms * size ** s.scale * Math.exp(0.15 * normal(random));
    total += d;
    return d;
  });
  const failAt = special === 'fail' ? total * 0.6 : Number.POSITIVE_INFINITY;
  let breakAt = special === 'stall' || special === 'pause' ? total * where : Number.POSITIVE_INFINITY;
  let worked = 0;
  for (const [i, s] of spec.stages.entries()) {
    if (planned) events.push({ t, input: { kind: 'stage', name: s.name } });
    const d = durations[i];
    const steps = Math.max(2, Math.round(d / (spec.gapMs * (0.5 + random()))));
    // Noisy rate: each step's share of the stage is drawn at random.
    const shares = Array.from({ length: steps }, () => Math.exp(0.6 * normal(random)));
    const sum = shares.reduce((a, b) => a + b, 0);
    const stageTotal = s.unit ? Math.round(s.perSize * size) : null;
    let done = 0;
    for (let k = 0; k < steps; k++) {
      t += d / steps;
      worked += d / steps;
      done += shares[k] / sum;
      if (worked >= failAt) {
        events.push({ t, input: { kind: 'failed', error: { message: 'disk full' } } });
        return { kind: spec.kind, plan: spec, events, truthMs: null, outcome: 'failed', size };
      }
      const percent = Math.min(100, Math.round(done * 10_000) / 100);
      const input = stageTotal
        ? {
            kind: 'progress',
            current: Math.min(stageTotal, Math.round(done * stageTotal)),
            total: stageTotal,
            unit: s.unit,
          }
        : { kind: 'progress', percent };
      events.push({ t, input });
      if (worked >= breakAt) {
        breakAt = Number.POSITIVE_INFINITY;
        if (special === 'stall') t += STALL_MS;
        if (special === 'pause') {
          events.push({ t: t + 1, input: { kind: 'paused' } });
          t += PAUSE_MS;
          events.push({ t, input: { kind: 'resumed' } });
        }
      }
    }
  }
  events.push({ t, input: { kind: 'completed' } });
  return { kind: spec.kind, plan: spec, events, truthMs: t, outcome: 'completed', size };
}
