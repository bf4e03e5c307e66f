import WebSocket from 'ws';

const CONNECT_TIMEOUT_MS = 15_000; // 15 seconds from dialling to `subscribed`
const CLOSE_TIMEOUT_MS = 2_000; // 2 seconds for a clean close before the socket is destroyed

/** Where a watcher finds an event's seq and acceptance time: Headway's `event` message. */
const NATIVE = {
  prefix: Buffer.from('{"type":"event"'),
  seq: Buffer.from('"seq":'),
  at: Buffer.from('"at":"'),
};
/** The seeds' `progress_update` message. */
export const SEEDS = {
  prefix: Buffer.from('{"type":"progress_update"'),
  seq: Buffer.from('"seq":'),
  at: Buffer.from('"timestamp":"'),
};
const EVENT_PREFIX = NATIVE.prefix;
const ISO_LENGTH = 24; // 2026-01-01T00:00:00.000Z
/** Every how many events a watcher measures the latency (parsing `at` costs a little). */
const LATENCY_SAMPLE_EVERY = 8;

/**
 * What every watcher of every compared server counts: events received in seq
 * order, the ones skipped (collapsed or lost) and the repeats, and a sample of
 * latencies (acceptance by the server → arrival here) with their arrival times.
 */
export class SeqCounter {
  /** Events received in order. */
  received = 0;
  /** Events skipped between two received seqs: collapsed by the server (or lost). */
  skipped = 0;
  /** Events received with a seq at or below one already seen. */
  duplicates = 0;
  /** Bytes of the event messages received. */
  bytes = 0;
  /** Seq of the job's state at subscribe time, then of the last event received. */
  lastSeq = 0;
  /** `performance.now()` of the last event received. */
  lastAt = 0;
  /** Close code, when the server closed the connection. */
  closeCode = null;
  /** Sampled milliseconds from the event's acceptance by the server to its arrival here. */
  latencies = [];
  /** `performance.now()` at the arrival of each sample in `latencies`. */
  arrivals = [];

  resetCounters() {
    this.received = 0;
    this.skipped = 0;
    this.duplicates = 0;
    this.bytes = 0;
    this.lastAt = 0;
    this.latencies = [];
    this.arrivals = [];
  }

  /** Count an event by its seq; true when its latency is to be sampled (`sample`). */
  count(seq) {
    this.lastAt = performance.now();
    if (seq <= this.lastSeq) {
      this.duplicates++;
      return false;
    }
    this.skipped += seq - this.lastSeq - 1;
    this.received++;
    this.lastSeq = seq;
    return this.received % LATENCY_SAMPLE_EVERY === 0;
  }

  /** The latency of the event just counted, accepted by the server at `acceptedAtMs`. */
  sample(acceptedAtMs) {
    this.latencies.push(Date.now() - acceptedAtMs);
    this.arrivals.push(this.lastAt);
  }
}

/**
 * One watcher of one job over the native protocol: connects with its token in
 * the URL and its subscription there too, and from then on counts `event`
 * messages and checks their seqs. Live events are read without a full
 * `JSON.parse` (the seq is found by a byte search) so that 2,000 of these in one
 * process cost the load generator as little as possible.
 */
export class Subscriber extends SeqCounter {
  constructor(ws, job, keys = NATIVE) {
    super();
    this.ws = ws;
    this.job = job;
    this.keys = keys;
  }

  onEvent(buf) {
    const { prefix, seq: SEQ_KEY, at: AT_KEY } = this.keys;
    let i = buf.indexOf(SEQ_KEY, prefix.length) + SEQ_KEY.length;
    let seq = 0;
    for (let c = buf[i]; c >= 48 && c <= 57; c = buf[++i]) seq = seq * 10 + (c - 48);
    this.bytes += buf.length;
    if (!this.count(seq)) return;
    const at = buf.indexOf(AT_KEY, i) + AT_KEY.length;
    if (at >= AT_KEY.length) this.sample(Date.parse(buf.toString('latin1', at, at + ISO_LENGTH)));
  }

  close() {
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, CLOSE_TIMEOUT_MS);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      ws.close(1000);
    });
  }
}

/**
 * Connect and subscribe one watcher. `wsUrl` is the endpoint without the token,
 * e.g. `ws://127.0.0.1:7070/v1/ws`.
 */
export function connectSubscriber(wsUrl, { token, job }, { delta = false } = {}) {
  // The subscription rides in the upgrade URL: the hub answers it behind the
  // `welcome`, with no message from the watcher and no round trip.
  const query = `token=${encodeURIComponent(token)}&job=${encodeURIComponent(job)}${delta ? '&state=delta' : ''}`;
  const ws = new WebSocket(`${wsUrl}?${query}`, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  const sub = new Subscriber(ws, job);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`no "subscribed" for ${job} within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    ws.on('error', (err) => fail(err));
    ws.on('unexpected-response', (_req, res) =>
      fail(new Error(`WebSocket upgrade answered ${res.statusCode}`)),
    );
    ws.on('close', (code, reason) => {
      sub.closeCode = code;
      fail(new Error(`closed before subscribing: ${code} ${reason}`));
    });
    ws.on('message', (buf) => {
      if (
        buf.length > EVENT_PREFIX.length &&
        buf.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, 0, EVENT_PREFIX.length) === 0
      ) {
        sub.onEvent(buf);
        return;
      }
      const message = JSON.parse(buf.toString());
      if (message.type === 'subscribed' && !settled) {
        settled = true;
        clearTimeout(timer);
        sub.lastSeq = message.jobs?.[0]?.seq ?? 0;
        resolve(sub);
      } else if (message.type === 'error') {
        fail(new Error(`server error ${message.code}: ${message.message}`));
      }
    });
  });
}

/**
 * One watcher of the seeds' design: `ws://…/ws/progress/{taskId}?token=…`, then
 * `{type: 'subscribe'}`, answered by the task's current progress.
 */
export function connectSeedSubscriber(httpUrl, { token, job }) {
  const base = httpUrl.replace(/^http/, 'ws');
  const ws = new WebSocket(`${base}/ws/progress/${job}?token=${encodeURIComponent(token)}`, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  const sub = new Subscriber(ws, job, SEEDS);
  let first = true;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no first progress for ${job} within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    ws.on('error', reject);
    ws.on('close', (code) => {
      sub.closeCode = code;
      reject(new Error(`closed before subscribing: ${code}`));
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe' })));
    ws.on('message', (buf) => {
      if (!first) return sub.onEvent(buf);
      first = false;
      clearTimeout(timer);
      sub.lastSeq = JSON.parse(buf.toString()).payload.seq;
      resolve(sub);
    });
  });
}

/**
 * Connect many watchers, `concurrency` handshakes at a time; on a failure, close
 * them all. `connect(spec)` dials one (default: the native protocol at `wsUrl`).
 */
export async function connectSubscribers(
  wsUrl,
  specs,
  { concurrency = 100, connect = (spec) => connectSubscriber(wsUrl, spec) } = {},
) {
  const subs = [];
  let next = 0;
  let failure = null;
  async function lane() {
    while (next < specs.length && !failure) {
      const spec = specs[next++];
      try {
        subs.push(await connect(spec));
      } catch (err) {
        failure ??= err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, lane));
  if (failure) {
    await closeSubscribers(subs);
    throw failure;
  }
  return subs;
}

export async function closeSubscribers(subs) {
  await Promise.all(subs.map((s) => s.close()));
}
