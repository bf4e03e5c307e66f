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
 *   [`low`, `high`];
 * - plain linear extrapolation: elapsed × (100 − p) / p;
 * - the previous estimator (a smoothed rate of the overall percent), a copy of
 *   which is kept below for the comparison.
 * A checkpoint without an estimate counts as an error of 1 (100 %). Failed jobs
 * have no true remaining time: they are replayed (and not learned) but not scored.
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

function run() {
  const random = rng(13);
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
        const trace = makeTrace(spec, random, special);
        learnFrom(replay(trace, summary, clock).state);
        clock += 3_600_000;
      }
    }
    const samples = [];
    for (let i = 0; i < MEASURED_JOBS; i++) {
      const special = i === 1 ? 'pause' : i === 3 ? 'stall' : i === 5 ? 'fail' : null;
      const trace = makeTrace(spec, random, special);
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

const byKind = run();
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
          ` at ${d.percent} % (${d.stage ?? 'no stage'}) ${s.basis}`,
      );
    }
  }
}
const all = [...byKind.values()];
const withHistory = all.filter((k) => k.history).flatMap((k) => k.samples);
const without = all.filter((k) => !k.history).flatMap((k) => k.samples);

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

const goals = [];
lines.push(
  '',
  '### Per checkpoint',
  '',
  '| Group | At | Headway error | Linear error | Previous error | Headway / linear | Coverage | Stated confidence |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
);
for (const [group, samples, history] of [
  ['with history', withHistory, true],
  ['without history', without, false],
]) {
  for (const c of CHECKPOINTS) {
    const s = summarize(samples.filter((x) => x.c === c));
    const ratio = s.headway / s.linear;
    lines.push(
      `| ${group} | ${pct(c)} | ${f2(s.headway)} | ${f2(s.linear)} | ${f2(s.previous)} | ${f2(ratio)} | ${pct(s.coverage)} | ${pct(s.confidence)} |`,
    );
    if (history) {
      goals.push({
        goal: `with history at ${pct(c)}: error ≤ 0.5 × linear`,
        result: f2(ratio),
        pass: ratio <= 0.5,
      });
      if (c >= 0.25)
        goals.push({
          goal: `with history at ${pct(c)}: error ≤ 0.20`,
          result: f2(s.headway),
          pass: s.headway <= 0.2,
        });
    } else {
      goals.push({
        goal: `without history at ${pct(c)}: error ≤ 1.1 × linear`,
        result: f2(ratio),
        pass: ratio <= 1.1,
      });
    }
  }
}
for (const [group, samples] of [
  ['with history', withHistory],
  ['without history', without],
]) {
  const s = summarize(samples);
  const gap = Math.abs(s.coverage - s.confidence);
  goals.push({
    goal: `${group}: coverage within 10 points of stated confidence`,
    result: `${pct(s.coverage)} vs ${pct(s.confidence)}`,
    pass: gap <= 0.1,
  });
}
lines.push('', '### Goals', '', '| Goal | Result | Pass |', '| --- | --- | --- |');
for (const g of goals) lines.push(`| ${g.goal} | ${g.result} | ${g.pass ? 'pass' : '**FAIL**'} |`);

const text = lines.join('\n');
console.log(text);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'eta.md'), `${text}\n`);
writeFileSync(
  join(resultsDir, 'eta.json'),
  JSON.stringify(
    { kinds: Object.fromEntries([...byKind].map(([k, v]) => [k, summarize(v.samples)])), goals },
    null,
    2,
  ),
);
