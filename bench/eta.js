#!/usr/bin/env node
/**
 * ETA accuracy benchmark (`node bench/eta.js`; see docs/benchmarks.md).
 *
 * Replays a seeded corpus of job traces (bench/lib/eta-traces.js) through the
 * hub's own reducer and kind history (built `@headway/server`, `dist/state`) with
 * an injected clock: the time of each event is the trace's, and the stall
 * monitor is emulated with the hub's own rule (`stallAt`, default thresholds).
 * Kinds with history first learn from 20 completed jobs; kinds without history
 * are measured as if each job were the first of its kind.
 *
 * At 10, 25, 50 and 75 % of each job's true duration it records:
 * - Headway's estimate: the state's `eta`, counted down since the state's time
 *   while running (as the dashboard does), and whether the truth fell inside
 *   [`low`, `high`]; whether the job was paused or stalled at that moment (the
 *   "(context)" rows leave those checkpoints out);
 * - plain linear extrapolation: elapsed × (100 − p) / p;
 * - the previous estimator (a smoothed rate of the overall percent), a copy of
 *   which is kept below for the comparison.
 * A checkpoint without an estimate counts as an error of 1 (100 %). Failed jobs
 * have no true remaining time: they are replayed (and not learned) but not scored.
 *
 * Options: --jobs=N measured per kind (default 8; of every eight, one pauses,
 * one stalls and one fails), --seed=N for another corpus of the same make,
 * --corpora=N to also score every goal across the corpora of seeds 1…N (one
 * small corpus moves a goal's ratio by ±0.3 from seed to seed).
 *
 * Prints the tables and the goals; writes bench/results/eta.{md,json}.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createdData,
  durationSample,
  estimatorOf,
  learn,
  prepareEvent,
  reduce,
  stallAt,
  stallDefaults,
} from '../packages/server/dist/state/index.js';
import { HISTORY_JOBS, KINDS, MEASURED_JOBS, makeTrace, rng } from './lib/eta-traces.js';

const CHECKPOINTS = [0.1, 0.25, 0.5, 0.75];
// `--jobs=N`: jobs measured per kind (one in eight pauses, one stalls, one fails);
// `--seed=N`: another corpus of the same make.
const option = (name, fallback) => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`);
  return value;
};
const JOBS = option('jobs', MEASURED_JOBS);
const SEED = option('seed', 13);
// `--corpora=N`: also score N corpora (seeds 1…N) and report each goal across them.
const CORPORA = process.argv.some((a) => a.startsWith('--corpora=')) ? option('corpora', 1) : 0;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const resultsDir = fileURLToPath(new URL('results', import.meta.url));

// ---------------------------------------------------------------------------
// The previous estimator, kept for the comparison: an exponentially smoothed rate
// of the overall percent (time constant 10 s, samples closer than 250 ms merged),
// null while paused; seconds = (100 − percent) / rate.

function previousFold(prev, at, percent) {
  if (prev === null) return { at, percent, percentRate: 0, samples: 1 };
  const elapsedMs = at - prev.at;
  if (elapsedMs < 250) return prev;
  const dt = elapsedMs / 1000;
  const alpha = 1 - Math.exp(-dt / 10);
  let { percentRate, samples } = prev;
  if (percent >= prev.percent) {
    const measured = (percent - prev.percent) / dt;
    percentRate = samples < 2 ? measured : percentRate + alpha * (measured - percentRate);
    samples += 1;
  }
  return { at, percent, percentRate, samples };
}

function previousEstimate(prev, percent, status) {
  if (status === 'paused' || prev === null || prev.samples < 2 || !(prev.percentRate > 0)) return null;
  return Math.round(Math.max(0, 100 - percent) / prev.percentRate);
}

// ---------------------------------------------------------------------------
// Replay

let seq = 0;
const iso = (ms) => new Date(ms).toISOString();

/** Replays one trace starting at `start` (ms); returns the final state and the checkpoints' samples. */
function replay(trace, history, start) {
  const id = `job-${++seq}`;
  const spec = trace.plan;
  const planned = spec.plan !== false;
  const input = {
    id,
    owner: 'bench',
    kind: spec.kind,
    ...(planned ? { stages: spec.stages.map((s) => ({ name: s.name, weight: s.weight })) } : {}),
  };
  let state = reduce(
    null,
    { job: id, seq: 1, kind: 'created', data: createdData(input), at: iso(start - 2000) },
    history,
  );
  let previous = null;
  const append = (kind, data, at) => {
    state = reduce(state, { job: id, seq: state.seq + 1, kind, data, at: iso(at) }, history);
  };
  // The hub's stall monitor: a running job past its threshold gets `stalled`.
  const monitor = (now) => {
    const stall = stallAt(state, history, stallDefaults, now);
    if (stall) append('stalled', stall, Date.parse(stall.since) + stall.thresholdMs);
  };
  const samples = [];
  const due = trace.truthMs === null ? [] : CHECKPOINTS.map((c) => ({ c, at: start + c * trace.truthMs }));
  for (const { t, input: report } of trace.events) {
    const at = start + t;
    while (due.length > 0 && due[0].at <= at) {
      const { c, at: cpAt } = due.shift();
      monitor(cpAt);
      samples.push(measure(state, previous, c, cpAt, start, trace.truthMs));
    }
    monitor(at);
    if (state.stalled) append('unstalled', {}, at);
    const { kind, data } = prepareEvent(state, report);
    append(kind, data, at);
    if (kind === 'progress') previous = previousFold(previous, at, state.progress.percent);
    if (kind === 'resumed' && previous) previous = { ...previous, at };
  }
  return { state, samples };
}

function countdown(state, at) {
  return state.status === 'running' && !state.stalled ? (at - Date.parse(state.updatedAt)) / 1000 : 0;
}

function measure(state, previous, c, at, start, truthMs) {
  const truth = (truthMs * (1 - c)) / 1000;
  const gone = countdown(state, at);
  const eta = state.eta;
  const headway = eta === null ? null : Math.max(0, eta.seconds - gone);
  const inside =
    eta === null || eta.low === undefined
      ? false
      : truth >= Math.max(0, eta.low - gone) && truth <= Math.max(0, eta.high - gone);
  const p = state.progress.percent;
  const elapsed = (at - start) / 1000;
  const linear = p > 0 ? (elapsed * (100 - p)) / p : null;
  const old = previousEstimate(previous, p, state.status);
  const prevEstimate = old === null ? null : Math.max(0, old - (state.status === 'running' ? gone : 0));
  const error = (estimate) => (estimate === null ? 1 : Math.abs(estimate - truth) / truth);
  return {
    c,
    headway: error(headway),
    linear: error(linear),
    previous: error(prevEstimate),
    inside,
    // Inside a pause or a stall, the rest of it is part of the truth that no estimator can know.
    halted: state.status === 'paused' || state.stalled !== null,
    confidence: eta?.confidence ?? 0,
    basis: eta?.basis ?? 'none',
    detail: {
      truth,
      estimate: headway,
      linear,
      low: eta?.low,
      high: eta?.high,
      stage: state.stage?.name,
      percent: p,
    },
  };
}

// ---------------------------------------------------------------------------
// The corpus

function run(seed) {
  const random = rng(seed);
  // Where a pause or a stall falls is drawn from a stream of its own, so that it
  // does not shift the rest of the corpus.
  const place = rng(seed + 1);
  const where = () => 0.2 + 0.6 * place();
  const byKind = new Map();
  let clock = T0;
  for (const spec of KINDS) {
    let summary = null;
    const learnFrom = (state) => {
      const sample = state.status === 'completed' ? durationSample(estimatorOf(state)) : null;
      if (spec.history && sample) summary = learn(summary, sample);
    };
    if (spec.history) {
      for (let i = 0; i < HISTORY_JOBS; i++) {
        const special = i === 7 ? 'pause' : i === 11 ? 'fail' : null;
        const trace = makeTrace(spec, random, special, where());
        learnFrom(replay(trace, summary, clock).state);
        clock += 3_600_000;
      }
    }
    const samples = [];
    for (let i = 0; i < JOBS; i++) {
      const special = i % 8 === 1 ? 'pause' : i % 8 === 3 ? 'stall' : i % 8 === 5 ? 'fail' : null;
      const trace = makeTrace(spec, random, special, where());
      const result = replay(trace, spec.history ? summary : null, clock);
      samples.push(...result.samples);
      learnFrom(result.state);
      clock += 3_600_000;
    }
    byKind.set(spec.kind, { history: spec.history, samples });
  }
  return byKind;
}

// ---------------------------------------------------------------------------
// Report

function median(values) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
const mean = (values) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const pct = (x) => `${Math.round(x * 100)} %`;
const f2 = (x) => x.toFixed(2);

function summarize(samples) {
  return {
    n: samples.length,
    headway: median(samples.map((s) => s.headway)),
    linear: median(samples.map((s) => s.linear)),
    previous: median(samples.map((s) => s.previous)),
    coverage: mean(samples.map((s) => (s.inside ? 1 : 0))),
    confidence: mean(samples.map((s) => s.confidence)),
  };
}

function row(label, s) {
  return `| ${label} | ${s.n} | ${f2(s.headway)} | ${f2(s.linear)} | ${f2(s.previous)} | ${pct(s.coverage)} | ${pct(s.confidence)} |`;
}

const HEADER = [
  '| Jobs | Checkpoints | Headway error | Linear error | Previous error | Coverage of [low, high] | Stated confidence |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
];

/** The samples with history and without. */
function groups(byKind) {
  const all = [...byKind.values()];
  return [
    ['with history', all.filter((k) => k.history).flatMap((k) => k.samples)],
    ['without history', all.filter((k) => !k.history).flatMap((k) => k.samples)],
  ];
}

/** The goals on one corpus: `{ goal, value, result, pass }`. */
function goalsOf(byKind) {
  const goals = [];
  const [[, withHistory], [, without]] = groups(byKind);
  for (const c of CHECKPOINTS) {
    const h = summarize(withHistory.filter((x) => x.c === c));
    goals.push({
      goal: `with history at ${pct(c)}: error ≤ 0.5 × linear`,
      value: h.headway / h.linear,
      limit: 0.5,
    });
    if (c >= 0.25)
      goals.push({ goal: `with history at ${pct(c)}: error ≤ 0.20`, value: h.headway, limit: 0.2 });
  }
  const versusLinear = (c, label, keep) => {
    const n = summarize(without.filter((x) => x.c === c && keep(x)));
    return {
      goal: `without history at ${pct(c)}${label}: error ≤ 1.1 × linear`,
      value: n.headway / n.linear,
      limit: 1.1,
    };
  };
  for (const c of CHECKPOINTS) goals.push(versusLinear(c, '', () => true));
  for (const c of CHECKPOINTS) {
    const quiet = versusLinear(c, ', outside pauses and stalls', (x) => !x.halted);
    goals.push({ ...quiet, extra: true });
  }
  for (const [group, samples] of groups(byKind)) {
    const s = summarize(samples);
    goals.push({
      goal: `${group}: coverage within 10 points of stated confidence`,
      value: Math.abs(s.coverage - s.confidence),
      limit: 0.1,
      result: `${pct(s.coverage)} vs ${pct(s.confidence)}`,
    });
  }
  for (const g of goals) {
    g.pass = g.value <= g.limit;
    g.result ??= f2(g.value);
  }
  return goals;
}

const byKind = run(SEED);
// ETA_DEBUG=0.5 lists every sample of that checkpoint on stderr.
if (process.env.ETA_DEBUG) {
  for (const [kind, k] of byKind) {
    for (const s of k.samples.filter((x) => x.c === Number(process.env.ETA_DEBUG))) {
      const d = s.detail;
      const r = (x) => (x === undefined || x === null ? '—' : Math.round(x));
      console.error(
        `${kind.padEnd(10)} ${pct(s.c).padStart(5)} headway ${f2(s.headway)} linear ${f2(s.linear)}` +
          ` truth ${r(d.truth)} s estimate ${r(d.estimate)} [${r(d.low)}, ${r(d.high)}] ${s.inside ? 'in ' : 'out'}` +
          ` linear ${r(d.linear)}` +
          ` at ${d.percent} % (${d.stage ?? 'no stage'}) ${s.basis}${s.halted ? ' halted' : ''}`,
      );
    }
  }
}
const [[, withHistory], [, without]] = groups(byKind);

const lines = ['### Per kind (all checkpoints)', '', ...HEADER];
for (const [kind, k] of byKind)
  lines.push(row(`${kind} (${k.history ? 'history' : 'no history'})`, summarize(k.samples)));
lines.push(row('**with history**', summarize(withHistory)));
lines.push(row('**without history**', summarize(without)));
lines.push(row('**overall**', summarize([...withHistory, ...without])));

lines.push(
  '',
  '### Per kind and checkpoint',
  '',
  '| Kind | At | Headway error | Linear error | Coverage | Stated confidence |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
);
for (const [kind, k] of byKind) {
  for (const c of CHECKPOINTS) {
    const s = summarize(k.samples.filter((x) => x.c === c));
    lines.push(
      `| ${kind} | ${pct(c)} | ${f2(s.headway)} | ${f2(s.linear)} | ${pct(s.coverage)} | ${pct(s.confidence)} |`,
    );
  }
}

lines.push(
  '',
  '### Per checkpoint',
  '',
  '| Group | At | Headway error | Linear error | Previous error | Headway / linear | Coverage | Stated confidence |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
);
for (const [group, samples] of groups(byKind)) {
  for (const c of CHECKPOINTS) {
    const s = summarize(samples.filter((x) => x.c === c));
    lines.push(
      `| ${group} | ${pct(c)} | ${f2(s.headway)} | ${f2(s.linear)} | ${f2(s.previous)} | ${f2(s.headway / s.linear)} | ${pct(s.coverage)} | ${pct(s.confidence)} |`,
    );
  }
}
const goals = goalsOf(byKind);
lines.push('', '### Goals', '', '| Goal | Result | Pass |', '| --- | --- | --- |');
// The checkpoints outside pauses and stalls are context for the goal above them, not a goal.
const verdict = (g) => (g.extra ? '(context)' : g.pass ? 'pass' : '**FAIL**');
for (const g of goals) lines.push(`| ${g.goal} | ${g.result} | ${verdict(g)} |`);

// Across corpora: the goals of one small corpus move with its draw.
const across = [];
if (CORPORA > 0) {
  const runs = Array.from({ length: CORPORA }, (_, i) => goalsOf(run(i + 1)));
  lines.push(
    '',
    `### Goals across ${CORPORA} corpora (seeds 1–${CORPORA}, ${JOBS} jobs measured per kind)`,
    '',
    '| Goal | Median | Worst | Corpora passing |',
    '| --- | ---: | ---: | ---: |',
  );
  for (const [i, g] of goals.entries()) {
    const values = runs.map((r) => r[i].value);
    const passing = values.filter((v) => v <= g.limit).length;
    const scale = g.goal.includes('coverage') ? (x) => `${Math.round(x * 100)} points` : f2;
    across.push({
      goal: g.goal,
      median: median(values),
      worst: Math.max(...values),
      passing,
      corpora: CORPORA,
    });
    const count = g.extra ? `(context) ${passing} / ${CORPORA}` : `${passing} / ${CORPORA}`;
    lines.push(`| ${g.goal} | ${scale(median(values))} | ${scale(Math.max(...values))} | ${count} |`);
  }
}

const text = lines.join('\n');
console.log(text);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'eta.md'), `${text}\n`);
writeFileSync(
  join(resultsDir, 'eta.json'),
  JSON.stringify(
    { kinds: Object.fromEntries([...byKind].map(([k, v]) => [k, summarize(v.samples)])), goals, across },
    null,
    2,
  ),
);
