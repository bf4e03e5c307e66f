/**
 * The baseline the fan-out benchmark compares Headway with: what a hand-built
 * progress channel typically is. A plain `ws` server beside an HTTP endpoint that
 * takes the same event batches as Headway's `POST /v1/events`; it folds each event
 * into an in-memory job state of the same shape as Headway's and, for every
 * subscriber, `JSON.stringify`s an `event` message of Headway's shape and sends it.
 * No persistence, no authentication, no validation, no backpressure handling.
 */
import { WebSocketServer } from 'ws';
import { batchServer } from './lib/http-batches.js';
import { listenWithWebSockets } from './lib/parent-channel.js';

/** Smoothing factor of the rate estimate, like an exponentially weighted moving average. */
const RATE_ALPHA = 0.3;

/** id → { state, subscribers } */
const jobs = new Map();

function createJob({ id, owner, name }) {
  const at = new Date().toISOString();
  const state = {
    id,
    owner,
    name: name ?? id,
    parent: null,
    status: 'queued',
    progress: { percent: 0 },
    stage: null,
    stages: [],
    message: null,
    eta: null,
    metadata: {},
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: at,
    updatedAt: at,
    startedAt: null,
    finishedAt: null,
    seq: 1,
    estimator: null,
  };
  jobs.set(id, { state, subscribers: new Set() });
  return state;
}

/** Fold a progress event into a new state object (as a reducer would), with a smoothed rate and an ETA. */
function applyProgress(prev, percent, atMs) {
  const at = new Date(atMs).toISOString();
  const last = prev.estimator;
  let estimator;
  if (last === null) {
    estimator = { at: atMs, percent, current: null, percentRate: 0, unitRate: null, jitter: 0, samples: 1 };
  } else {
    const dt = Math.max(1, atMs - last.at) / 1000;
    const instant = (percent - last.percent) / dt;
    const percentRate =
      last.samples === 1 ? instant : last.percentRate + RATE_ALPHA * (instant - last.percentRate);
    const deviation = percentRate === 0 ? 0 : Math.abs(instant - percentRate) / Math.abs(percentRate);
    estimator = {
      at: atMs,
      percent,
      current: null,
      percentRate,
      unitRate: null,
      jitter: last.jitter + RATE_ALPHA * (deviation - last.jitter),
      samples: last.samples + 1,
    };
  }
  const rate = estimator.percentRate;
  const eta =
    rate > 0
      ? {
          seconds: Math.round((100 - percent) / rate),
          confidence: Math.min(1, estimator.samples / 10) * (1 / (1 + estimator.jitter)),
          rate,
          unit: 'percent',
        }
      : null;
  return {
    ...prev,
    status: 'running',
    progress: { percent },
    eta,
    updatedAt: at,
    startedAt: prev.startedAt ?? at,
    seq: prev.seq + 1,
    estimator,
  };
}

/** The batch's time in ms, parsed once for all of its events. */
let batchAt = '';
let batchMs = 0;

function publish(input, at) {
  const job = jobs.get(input.job);
  if (!job) return { job: input.job, error: { code: 'HW_ERR_NOT_FOUND', message: 'no such job' } };
  if (at !== batchAt) {
    batchAt = at;
    batchMs = Date.parse(at);
  }
  const data = { percent: input.percent };
  job.state = applyProgress(job.state, input.percent, batchMs);
  const message = {
    type: 'event',
    job: input.job,
    seq: job.state.seq,
    kind: 'progress',
    data,
    at: job.state.updatedAt,
    state: job.state,
  };
  // The point of the baseline: one serialization per subscriber.
  for (const ws of job.subscribers) ws.send(JSON.stringify(message));
  return { job: input.job, seq: job.state.seq, control: job.state.control };
}

const server = batchServer({ createJob, publish });

const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const subscribed = new Set();
  const subscribe = (id, jobId) => {
    const job = jobs.get(jobId);
    if (!job) {
      ws.send(JSON.stringify({ type: 'error', id, code: 'HW_ERR_NOT_FOUND', message: 'no such job' }));
      return;
    }
    job.subscribers.add(ws);
    subscribed.add(job);
    ws.send(JSON.stringify({ type: 'subscribed', id, jobs: [job.state], events: [], recovered: false }));
  };
  ws.send(
    JSON.stringify({
      type: 'welcome',
      version: 1,
      heartbeatMs: 30_000,
      limits: { maxMessageBytes: 65_536, maxSubscriptions: 100, messagesPerSecond: 50, replayLimit: 0 },
      user: 'anonymous',
    }),
  );
  // A subscription in the URL (`?job=`), as the hub takes it.
  const inUrl = new URL(req.url, 'http://localhost').searchParams.get('job');
  if (inUrl !== null) subscribe('url', inUrl);
  ws.on('message', (raw) => {
    let message;
    try {
      message = JSON.parse(raw.toString());
    } catch {
      return;
    }
    if (message.type === 'subscribe') subscribe(message.id, message.job);
  });
  ws.on('close', () => {
    for (const job of subscribed) job.subscribers.delete(ws);
  });
});

listenWithWebSockets(server, wss);
